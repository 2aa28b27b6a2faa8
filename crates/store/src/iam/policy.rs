//! IAM-style access policies: parsing a subset of the AWS policy JSON grammar,
//! evaluating it against an action and resource ARN, and mapping s3s operation
//! names to the permission each one needs.
//!
//! The parser is deliberately strict. Anything it doesn't understand is an
//! error, not something it skips. Skipping a `Condition` or a `NotResource`
//! would make a statement apply more widely than its author meant.

use std::{fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{self, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor, value},
};
use wildmatch::WildMatch;

const ARN_PREFIX: &str = "arn:aws:s3:::";

/// Why a policy document was rejected.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The document is not valid JSON, is missing a required field, has a field
    /// of the wrong type, or has a field that isn't in the grammar.
    #[error("invalid policy document: {0}")]
    Json(#[from] serde_json::Error),
    /// `Version` is present but is not one of the two AWS policy language versions.
    #[error("unsupported policy Version {0:?}: expected \"2012-10-17\" or \"2008-10-17\"")]
    Version(String),
    /// The document has no `Statement`, or an empty one.
    #[error("policy must contain at least one Statement")]
    NoStatements,
    /// A statement uses an element that this version can't evaluate.
    #[error("statement {index}: {field} is not supported in this version")]
    Unsupported {
        /// Position of the statement in the document, starting at 0.
        index: usize,
        /// The JSON field name, e.g. `Condition`.
        field: &'static str,
    },
    /// A statement has an element with a value the grammar doesn't allow.
    #[error("statement {index}: {message}")]
    Statement {
        /// Position of the statement in the document, starting at 0.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// What a single policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A matching statement allows the request, and none denies it.
    Allow,
    /// A matching statement explicitly denies the request.
    Deny,
    /// No statement matches the request.
    NotApplicable,
}

/// A parsed IAM-style policy document (AWS JSON grammar subset).
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
struct Statement {
    deny: bool,
    actions: Vec<WildMatch>,
    resources: Vec<WildMatch>,
}

impl Statement {
    fn new<S: AsRef<str>>(deny: bool, actions: &[S], resources: &[S]) -> Self {
        // IAM action names are case-insensitive; S3 bucket names and keys are not.
        let action = |a: &S| WildMatch::new_case_insensitive(a.as_ref());
        let resource = |r: &S| WildMatch::new(r.as_ref());
        Self {
            deny,
            actions: actions.iter().map(action).collect(),
            resources: resources.iter().map(resource).collect(),
        }
    }

    fn matches(&self, action: &str, resource: &str) -> bool {
        self.actions.iter().any(|a| a.matches(action))
            && self.resources.iter().any(|r| r.matches(resource))
    }
}

// Uses serde derive, not serde_json::Value, because derive rejects duplicate
// keys. A Value map keeps only the last duplicate, so `{"Effect":"Deny","Effect":"Allow"}`
// would be read as an Allow.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawPolicy {
    version: Option<String>,
    #[serde(rename = "Id")]
    _id: Option<String>,
    statement: Option<OneOrMany<RawStatement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawStatement {
    #[serde(rename = "Sid")]
    _sid: Option<String>,
    effect: String,
    action: OneOrMany<String>,
    resource: OneOrMany<String>,
    // These are accepted here only so the error can say "not supported" rather
    // than "unknown field".
    principal: Option<IgnoredAny>,
    not_principal: Option<IgnoredAny>,
    not_action: Option<IgnoredAny>,
    not_resource: Option<IgnoredAny>,
    condition: Option<IgnoredAny>,
}

/// The AWS grammar lets `Statement`, `Action` and `Resource` be a single value or an array.
struct OneOrMany<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a single value or an array")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<T>, E> {
                T::deserialize(s.into_deserializer()).map(|v| vec![v])
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Vec<T>, A::Error> {
                T::deserialize(value::MapAccessDeserializer::new(m)).map(|v| vec![v])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Vec<T>, A::Error> {
                Vec::deserialize(value::SeqAccessDeserializer::new(s))
            }
        }
        d.deserialize_any(V(PhantomData)).map(OneOrMany)
    }
}

impl Policy {
    /// Parses a policy document, rejecting anything outside the supported grammar.
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = serde_json::from_str(json)?;
        if let Some(v) = raw.version
            && v != "2012-10-17"
            && v != "2008-10-17"
        {
            return Err(PolicyError::Version(v));
        }
        let raw_statements = raw.statement.map(|s| s.0).unwrap_or_default();
        if raw_statements.is_empty() {
            return Err(PolicyError::NoStatements);
        }
        let statements = raw_statements
            .into_iter()
            .enumerate()
            .map(|(index, s)| parse_statement(index, s))
            .collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    /// The built-in `FullAccess` policy: every S3 action on every resource.
    pub fn full_access() -> Policy {
        let statement = Statement::new(false, &["s3:*"], &["arn:aws:s3:::*"]);
        Policy {
            statements: vec![statement],
        }
    }

    /// The built-in `ReadOnlyAccess` policy: every `s3:Get*` and `s3:List*` action on every resource.
    pub fn read_only_access() -> Policy {
        // Same shape as AWS's AmazonS3ReadOnlyAccess: every Get*/List* action is a read.
        let statement = Statement::new(false, &["s3:Get*", "s3:List*"], &["arn:aws:s3:::*"]);
        Policy {
            statements: vec![statement],
        }
    }

    /// Looks up a built-in policy by its exact name: `FullAccess` or `ReadOnlyAccess`.
    pub fn builtin(name: &str) -> Option<Policy> {
        match name {
            "FullAccess" => Some(Self::full_access()),
            "ReadOnlyAccess" => Some(Self::read_only_access()),
            _ => None,
        }
    }

    /// The document of a built-in policy, as a person reads it: what
    /// [`Self::builtin`] evaluates, in the grammar a custom policy uses.
    pub fn builtin_document(name: &str) -> Option<&'static str> {
        match name {
            "FullAccess" => Some(
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::*"}]}"#,
            ),
            "ReadOnlyAccess" => Some(
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "arn:aws:s3:::*"}]}"#,
            ),
            _ => None,
        }
    }

    /// What this policy alone says about `action` (e.g. `s3:GetObject`) on `resource`
    /// (an ARN such as `arn:aws:s3:::bucket/key`). A matching Deny beats any Allow.
    pub fn evaluate(&self, action: &str, resource: &str) -> Decision {
        let mut decision = Decision::NotApplicable;
        for s in &self.statements {
            if s.matches(action, resource) {
                if s.deny {
                    return Decision::Deny;
                }
                decision = Decision::Allow;
            }
        }
        decision
    }
}

fn parse_statement(index: usize, s: RawStatement) -> Result<Statement, PolicyError> {
    let unsupported = [
        ("Principal", s.principal.is_some()),
        ("NotPrincipal", s.not_principal.is_some()),
        ("NotAction", s.not_action.is_some()),
        ("NotResource", s.not_resource.is_some()),
        ("Condition", s.condition.is_some()),
    ];
    if let Some((field, _)) = unsupported.into_iter().find(|(_, present)| *present) {
        return Err(PolicyError::Unsupported { index, field });
    }
    let bad = |message: String| PolicyError::Statement { index, message };
    let deny = match s.effect.as_str() {
        "Allow" => false,
        "Deny" => true,
        other => {
            return Err(bad(format!(
                "Effect must be \"Allow\" or \"Deny\", got {other:?}"
            )));
        }
    };
    let (actions, resources) = (s.action.0, s.resource.0);
    // AWS service prefixes are case-insensitive ("S3:GetObject" is valid); ARNs are not.
    check_list("Action", &actions, "s3:", true).map_err(bad)?;
    check_list("Resource", &resources, ARN_PREFIX, false).map_err(bad)?;
    Ok(Statement::new(deny, &actions, &resources))
}

fn check_list(field: &str, values: &[String], prefix: &str, fold: bool) -> Result<(), String> {
    if values.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    let in_scope = |v: &str| {
        let head = v.get(..prefix.len());
        v == "*" || head.is_some_and(|h| h == prefix || (fold && h.eq_ignore_ascii_case(prefix)))
    };
    match values.iter().find(|v| !in_scope(v)) {
        Some(v) => Err(format!(
            "{field} {v:?} must be \"*\" or start with {prefix:?}"
        )),
        None => Ok(()),
    }
}

/// Combines decisions from several policies: any explicit Deny wins, else any Allow, else implicit deny.
pub fn is_allowed(policies: &[Policy], action: &str, resource: &str) -> bool {
    let says = |d| policies.iter().any(|p| p.evaluate(action, resource) == d);
    !says(Decision::Deny) && says(Decision::Allow)
}

/// The IAM action and the resource ARN an S3 operation needs, from the s3s operation name
/// (e.g. "GetObject", "ListObjectsV2", "PutObject", "CompleteMultipartUpload") plus bucket and key.
///
/// Returns `None` for operations without a mapping, and for bucket or object operations
/// called without a bucket; the caller should deny in both cases. An object operation
/// without a key needs access to the whole bucket (`arn:aws:s3:::bucket/*`).
/// This covers only the destination: `CopyObject` and `UploadPartCopy` also need
/// `s3:GetObject` on the source, and `DeleteObjects` needs a check per key, both done by the caller.
/// The key must be the one the store will act on; the store must reject keys with `..`
/// segments, or a prefix-scoped grant could reach outside its prefix.
pub fn required_permission(
    op_name: &str,
    bucket: Option<&str>,
    key: Option<&str>,
) -> Option<(&'static str, String)> {
    let (action, on_object) = match op_name {
        "ListBuckets" => return Some(("s3:ListAllMyBuckets", format!("{ARN_PREFIX}*"))),
        "CreateBucket" => ("s3:CreateBucket", false),
        "DeleteBucket" => ("s3:DeleteBucket", false),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => ("s3:ListBucket", false),
        "GetBucketLocation" => ("s3:GetBucketLocation", false),
        "ListMultipartUploads" => ("s3:ListBucketMultipartUploads", false),
        "GetObject" | "HeadObject" => ("s3:GetObject", true),
        "GetObjectAttributes" => ("s3:GetObjectAttributes", true),
        "PutObject" | "CopyObject" | "UploadPart" | "UploadPartCopy" => ("s3:PutObject", true),
        "CreateMultipartUpload" | "CompleteMultipartUpload" => ("s3:PutObject", true),
        "DeleteObject" | "DeleteObjects" => ("s3:DeleteObject", true),
        "AbortMultipartUpload" => ("s3:AbortMultipartUpload", true),
        "ListParts" => ("s3:ListMultipartUploadParts", true),
        _ => return None,
    };
    let bucket = bucket?;
    let resource = match on_object {
        true => format!("{ARN_PREFIX}{bucket}/{}", key.unwrap_or("*")),
        false => format!("{ARN_PREFIX}{bucket}"),
    };
    Some((action, resource))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{Allow, Deny, NotApplicable};

    fn doc(statements: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":{statements}}}"#)
    }

    fn stmt(effect: &str, action: &str, resource: &str) -> String {
        format!(r#"{{"Effect":"{effect}","Action":"{action}","Resource":"{resource}"}}"#)
    }

    fn allowed(p: &Policy, op: &str, bucket: &str, key: Option<&str>) -> bool {
        let (action, resource) = required_permission(op, Some(bucket), key).expect("mapped op");
        is_allowed(std::slice::from_ref(p), action, &resource)
    }

    #[test]
    fn parses_valid_documents() {
        #[rustfmt::skip]
        let cases = [
            (doc(&stmt("Allow", "s3:GetObject", "arn:aws:s3:::b/k")), "s3:GetObject", "arn:aws:s3:::b/k", Allow),
            (doc(&stmt("Allow", "s3:GetObject", "arn:aws:s3:::b/k")), "s3:GetObject", "arn:aws:s3:::b/j", NotApplicable),
            (doc(&format!("[{}]", stmt("Deny", "s3:*", "*"))), "s3:PutObject", "arn:aws:s3:::x", Deny),
            (r#"{"Statement":{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],
                "Resource":["arn:aws:s3:::a","arn:aws:s3:::b/*"]}}"#.into(), "s3:PutObject", "arn:aws:s3:::b/z", Allow),
            (r#"{"Version":"2008-10-17","Id":"p1","Statement":[{"Sid":"s1","Effect":"Allow",
                "Action":"*","Resource":"*"}]}"#.into(), "s3:DeleteBucket", "arn:aws:s3:::q", Allow),
        ];
        for (json, action, resource, want) in cases {
            let p = Policy::parse(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(p.evaluate(action, resource), want, "{json}");
        }
    }

    #[test]
    fn rejects_invalid_documents_with_clear_errors() {
        let with = |extra: &str| {
            doc(&format!(
                r#"{{"Effect":"Allow","Action":"*","Resource":"*",{extra}}}"#
            ))
        };
        let two = format!(
            "[{},{}]",
            stmt("Allow", "s3:*", "*"),
            stmt("Allow", "iam:CreateUser", "*")
        );
        #[rustfmt::skip]
        let cases = [
            ("not json".to_string(), "invalid policy document: expected ident"),
            (r#"{"Version":"2020-01-01","Statement":[]}"#.into(), r#"unsupported policy Version "2020-01-01""#),
            (r#"{"Version":"2012-10-17"}"#.into(), "policy must contain at least one Statement"),
            (doc("[]"), "policy must contain at least one Statement"),
            (r#"{"Statement":[],"Extra":1}"#.into(), "unknown field `Extra`"),
            (doc(&stmt("Permit", "s3:*", "*")), r#"statement 0: Effect must be "Allow" or "Deny", got "Permit""#),
            (doc(r#"{"Effect":"Allow","Action":[],"Resource":"*"}"#), "statement 0: Action must not be empty"),
            (doc(r#"{"Effect":"Allow","Action":"*","Resource":[]}"#), "statement 0: Resource must not be empty"),
            (doc(&two), r#"statement 1: Action "iam:CreateUser" must be "*" or start with "s3:""#),
            (doc(&stmt("Allow", "s3:*", "b/x")), r#"Resource "b/x" must be "*" or start with "arn:aws:s3:::""#),
            (with(r#""Principal":"*""#), "statement 0: Principal is not supported in this version"),
            (with(r#""NotPrincipal":{"AWS":"x"}"#), "statement 0: NotPrincipal is not supported in this version"),
            (with(r#""NotAction":"s3:Get*""#), "statement 0: NotAction is not supported in this version"),
            (with(r#""NotResource":"*""#), "statement 0: NotResource is not supported in this version"),
            (with(r#""Condition":{"Bool":{"aws:SecureTransport":"true"}}"#), "statement 0: Condition is not supported in this version"),
            (with(r#""Effects":"Allow""#), "unknown field `Effects`"),
            (doc(r#"{"Action":"*","Resource":"*"}"#), "missing field `Effect`"),
            (doc(r#"{"Effect":"Deny","Effect":"Allow","Action":"*","Resource":"*"}"#), "duplicate field `Effect`"),
            (doc(r#"{"Effect":"Allow","Action":5,"Resource":"*"}"#), "expected a single value or an array"),
        ];
        for (json, want) in cases {
            let err = Policy::parse(&json).expect_err(&json).to_string();
            assert!(err.contains(want), "{json}\n got: {err}\nwant: {want}");
        }
    }

    #[test]
    fn wildcards_and_case_rules() {
        #[rustfmt::skip]
        let cases = [
            ("s3:*", "arn:aws:s3:::*", "s3:GetObject", "arn:aws:s3:::b/any/deep/key", true),
            ("s3:Get*", "*", "s3:GetObject", "arn:aws:s3:::b", true),
            ("s3:Get*", "*", "s3:PutObject", "arn:aws:s3:::b", false),
            ("s3:?etObject", "*", "s3:GetObject", "arn:aws:s3:::b", true),
            ("s3:?etObject", "*", "s3:ListObjects", "arn:aws:s3:::b", false),
            ("s3:GetObject", "*", "S3:GETOBJECT", "arn:aws:s3:::b", true),
            ("S3:get*", "*", "s3:GetObject", "arn:aws:s3:::b", true),
            ("s3:*", "arn:aws:s3:::b/?", "s3:GetObject", "arn:aws:s3:::b/x", true),
            ("s3:*", "arn:aws:s3:::b/?", "s3:GetObject", "arn:aws:s3:::b/xy", false),
            ("s3:*", "arn:aws:s3:::b/*", "s3:GetObject", "arn:aws:s3:::B/x", false),
            ("s3:*", "arn:aws:s3:::b/Data*", "s3:GetObject", "arn:aws:s3:::b/data1", false),
            ("s3:*", "arn:aws:s3:::b", "s3:ListBucket", "arn:aws:s3:::b2", false),
        ];
        for (action_pat, resource_pat, action, resource, want) in cases {
            let p = Policy::parse(&doc(&stmt("Allow", action_pat, resource_pat))).expect("valid");
            let got = p.evaluate(action, resource) == Allow;
            assert_eq!(
                got, want,
                "{action_pat} {resource_pat} vs {action} {resource}"
            );
        }
    }

    #[test]
    fn deny_wins_within_and_across_policies() {
        let deny_b = stmt("Deny", "s3:DeleteObject", "arn:aws:s3:::b/*");
        let p = Policy::parse(&doc(&format!("[{},{deny_b}]", stmt("Allow", "s3:*", "*"))));
        let p = p.expect("valid");
        assert_eq!(p.evaluate("s3:DeleteObject", "arn:aws:s3:::b/k"), Deny);
        assert_eq!(p.evaluate("s3:DeleteObject", "arn:aws:s3:::c/k"), Allow);
        let deny = Policy::parse(&doc(&stmt("Deny", "s3:PutObject", "*"))).expect("valid");
        let both = [Policy::full_access(), deny];
        assert!(!is_allowed(&both, "s3:PutObject", "arn:aws:s3:::b/k"));
        assert!(is_allowed(&both, "s3:GetObject", "arn:aws:s3:::b/k"));
        // A policy that says nothing about a request is an implicit deny.
        assert!(!is_allowed(&both[1..], "s3:GetObject", "arn:aws:s3:::b/k"));
        assert!(!is_allowed(&[], "s3:GetObject", "arn:aws:s3:::b/k"));
    }

    #[test]
    fn builtin_policies() {
        let (ro, full) = ("ReadOnlyAccess", "FullAccess");
        #[rustfmt::skip]
        let cases = [
            (ro, "GetObject", true), (ro, "HeadObject", true), (ro, "ListObjectsV2", true),
            (ro, "ListBuckets", true), (ro, "GetBucketLocation", true), (ro, "ListParts", true),
            (ro, "PutObject", false), (ro, "DeleteObject", false), (ro, "DeleteBucket", false),
            (ro, "CompleteMultipartUpload", false), (ro, "AbortMultipartUpload", false),
            (full, "PutObject", true), (full, "DeleteObject", true), (full, "DeleteBucket", true),
            (full, "CompleteMultipartUpload", true), (full, "ListBuckets", true), (full, "GetObject", true),
        ];
        for (name, op, want) in cases {
            let p = Policy::builtin(name).expect("builtin exists");
            assert_eq!(allowed(&p, op, "b", Some("k")), want, "{name} {op}");
            // The document shown for it says the same.
            let shown = Policy::parse(Policy::builtin_document(name).expect("document exists"))
                .expect("the document parses");
            assert_eq!(
                allowed(&shown, op, "b", Some("k")),
                want,
                "{name}'s document, {op}"
            );
        }
        assert!(Policy::builtin("fullaccess").is_none());
        assert!(Policy::builtin("AdminAccess").is_none());
    }

    #[test]
    fn prefix_scoped_policy() {
        let p = Policy::parse(&doc(&stmt(
            "Allow",
            "s3:GetObject",
            "arn:aws:s3:::b/dataset/*",
        )));
        let p = p.expect("valid");
        #[rustfmt::skip]
        let cases = [
            ("GetObject", "b", Some("dataset/x"), true),
            ("GetObject", "b", Some("dataset/sub/y"), true),
            ("GetObject", "b", Some("other"), false),
            ("GetObject", "b", Some("datasetx"), false),
            ("GetObject", "c", Some("dataset/x"), false),
            ("PutObject", "b", Some("dataset/x"), false),
            // A keyless object op needs the whole bucket, which this policy doesn't grant.
            ("GetObject", "b", None, false),
        ];
        for (op, bucket, key, want) in cases {
            assert_eq!(allowed(&p, op, bucket, key), want, "{op} {bucket} {key:?}");
        }
    }

    #[test]
    fn required_permission_per_operation() {
        #[rustfmt::skip]
        let cases = [
            ("ListBuckets", "s3:ListAllMyBuckets", "arn:aws:s3:::*"),
            ("CreateBucket", "s3:CreateBucket", "arn:aws:s3:::b"),
            ("DeleteBucket", "s3:DeleteBucket", "arn:aws:s3:::b"),
            ("HeadBucket", "s3:ListBucket", "arn:aws:s3:::b"),
            ("GetBucketLocation", "s3:GetBucketLocation", "arn:aws:s3:::b"),
            ("ListObjects", "s3:ListBucket", "arn:aws:s3:::b"),
            ("ListObjectsV2", "s3:ListBucket", "arn:aws:s3:::b"),
            ("ListMultipartUploads", "s3:ListBucketMultipartUploads", "arn:aws:s3:::b"),
            ("GetObject", "s3:GetObject", "arn:aws:s3:::b/d/k"),
            ("HeadObject", "s3:GetObject", "arn:aws:s3:::b/d/k"),
            ("GetObjectAttributes", "s3:GetObjectAttributes", "arn:aws:s3:::b/d/k"),
            ("PutObject", "s3:PutObject", "arn:aws:s3:::b/d/k"),
            ("CopyObject", "s3:PutObject", "arn:aws:s3:::b/d/k"),
            ("CreateMultipartUpload", "s3:PutObject", "arn:aws:s3:::b/d/k"),
            ("UploadPart", "s3:PutObject", "arn:aws:s3:::b/d/k"),
            ("UploadPartCopy", "s3:PutObject", "arn:aws:s3:::b/d/k"),
            ("CompleteMultipartUpload", "s3:PutObject", "arn:aws:s3:::b/d/k"),
            ("DeleteObject", "s3:DeleteObject", "arn:aws:s3:::b/d/k"),
            ("DeleteObjects", "s3:DeleteObject", "arn:aws:s3:::b/d/k"),
            ("AbortMultipartUpload", "s3:AbortMultipartUpload", "arn:aws:s3:::b/d/k"),
            ("ListParts", "s3:ListMultipartUploadParts", "arn:aws:s3:::b/d/k"),
        ];
        for (op, action, resource) in cases {
            let got = required_permission(op, Some("b"), Some("d/k"));
            assert_eq!(got, Some((action, resource.to_string())), "{op}");
        }
        let keyless = required_permission("DeleteObjects", Some("b"), None);
        assert_eq!(
            keyless,
            Some(("s3:DeleteObject", "arn:aws:s3:::b/*".to_string()))
        );
        assert_eq!(
            required_permission("PutBucketPolicy", Some("b"), None),
            None
        );
        assert_eq!(required_permission("getobject", Some("b"), Some("k")), None);
        assert_eq!(required_permission("GetObject", None, Some("k")), None);
        assert_eq!(required_permission("ListObjectsV2", None, None), None);
    }
}
