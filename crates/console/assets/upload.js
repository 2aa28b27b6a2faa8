// Uploads the chosen files of a bucket page straight to the store: each
// file by one presigned PUT, or, over PART_SIZE, as an upload in parts
// whose parts go to presigned URLs, with a progress bar per file. The
// console only hands out the URLs (checking the session's form token);
// the bytes never pass through it. Written by hand, as the console has no
// JavaScript build: XMLHttpRequest because fetch reports no upload progress.
"use strict";

const PART_SIZE = 16 * 1024 * 1024;

function consoleStep(form, step, body) {
  const bucket = encodeURIComponent(form.dataset.bucket);
  body.form_token = form.dataset.formToken;
  return fetch(`/console/buckets/${bucket}/upload/${step}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }).then(async (answer) => {
    const json = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(json.error || `${step}: ${answer.status}`);
    return json;
  });
}

// The store's own message from an S3 error body.
function storeMessage(xhr) {
  const doc = new DOMParser().parseFromString(xhr.responseText || "", "application/xml");
  const code = doc.querySelector("Code");
  const message = doc.querySelector("Message");
  if (code && message) return `${code.textContent}: ${message.textContent}`;
  return `the store answered ${xhr.status}`;
}

function send(presigned, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(presigned.method, presigned.url);
    for (const [name, value] of Object.entries(presigned.headers || {})) {
      if (name.toLowerCase() !== "host") xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => (xhr.status < 300 ? resolve(xhr) : reject(new Error(storeMessage(xhr))));
    xhr.onerror = () => reject(new Error("the store could not be reached"));
    xhr.send(blob);
  });
}

async function uploadOne(form, file, bar) {
  const key = form.dataset.prefix + file.name;
  const shown = (done) => { bar.value = done; };
  bar.max = file.size || 1;
  if (file.size <= PART_SIZE) {
    const url = await consoleStep(form, "presign", { operation: "put", key });
    await send(url, file, shown);
    shown(bar.max);
    return;
  }
  const { upload_id } = await consoleStep(form, "begin", { key });
  try {
    const parts = [];
    for (let start = 0, part = 1; start < file.size; start += PART_SIZE, part += 1) {
      const url = await consoleStep(form, "presign", { operation: "upload_part", key, upload_id, part });
      const xhr = await send(url, file.slice(start, start + PART_SIZE), (n) => shown(start + n));
      parts.push({ part, etag: xhr.getResponseHeader("ETag") });
    }
    await consoleStep(form, "complete", { key, upload_id, parts });
  } catch (failure) {
    await consoleStep(form, "abort", { key, upload_id }).catch(() => {});
    throw failure;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  if (!form) return;
  const status = document.getElementById("upload-status");
  const list = document.getElementById("upload-progress");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = Array.from(form.querySelector("input[type=file]").files);
    let failed = 0;
    for (const file of files) {
      const item = document.createElement("li");
      const bar = document.createElement("progress");
      bar.setAttribute("aria-label", `Uploading ${file.name}`);
      item.append(`${file.name} `, bar);
      list.append(item);
      status.textContent = `Uploading ${file.name}…`;
      try {
        await uploadOne(form, file, bar);
        item.append(" uploaded");
        item.classList.add("state-succeeded");
      } catch (failure) {
        failed += 1;
        item.append(` failed: ${failure.message}`);
        item.classList.add("error");
      }
    }
    status.textContent = failed
      ? `${failed} of ${files.length} uploads failed; nothing of a failed file was kept.`
      : `${files.length} uploaded. Reload the page to see them.`;
  });
});
