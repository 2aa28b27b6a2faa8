// Keeps a run's page current while the run is queued or running: every
// two seconds the live part of the page is fetched again and swapped in,
// so the curves grow and the logs follow; it stops once the run has ended.
// Written by hand: the console has no JavaScript build, and this is all.
"use strict";

const PERIOD_MS = 2000;

function following(live) {
  const part = live.querySelector("[data-live]");
  return part !== null && part.dataset.live === "true";
}

function showLogEnds(live) {
  for (const log of live.querySelectorAll("pre.log")) log.scrollTop = log.scrollHeight;
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (!live) return;
  showLogEnds(live);
  const refresh = async () => {
    if (!following(live)) return;
    try {
      const answer = await fetch(live.dataset.src);
      // A session that ended leads to sign-in: load the page itself.
      if (answer.redirected) return window.location.reload();
      if (answer.ok) {
        live.innerHTML = await answer.text();
        showLogEnds(live);
      }
    } catch (lost) {
      // The daemon restarted or the network dropped: try again later.
    }
    window.setTimeout(refresh, PERIOD_MS);
  };
  window.setTimeout(refresh, PERIOD_MS);
});
