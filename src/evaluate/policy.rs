//! Reading IAM and bucket policy documents: the few questions checks ask.
//!
//! Policy grammar per the IAM JSON policy reference: `Statement` is an
//! object or a list; `Action`, `NotAction`, `Resource` and principals are a
//! string or a list of strings; action names compare case-insensitively.
//! This is not a full policy evaluator: it answers narrow questions
//! conservatively, and a document it cannot read is reported, not guessed.

use serde_json::Value;

/// One statement, reduced to what the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub allow: bool,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub resources: Vec<String>,
    /// `Principal` is `*` or `{"AWS": "*"}` (or includes it).
    pub any_principal: bool,
    pub condition: Option<Value>,
}

/// Why a document could not be read as a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits a policy document into statements.
pub fn statements(document: &Value) -> Result<Vec<Statement>, PolicyError> {
    let raw = match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(single @ Value::Object(_)) => vec![single],
        Some(_) => {
            return Err(PolicyError(
                "Statement is neither an object nor a list".into(),
            ))
        }
        None => return Err(PolicyError("policy has no Statement".into())),
    };
    raw.into_iter().map(statement).collect()
}

fn statement(value: &Value) -> Result<Statement, PolicyError> {
    let effect = value.get("Effect").and_then(Value::as_str);
    let allow = match effect {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => {
            return Err(PolicyError(
                "statement Effect is neither Allow nor Deny".into(),
            ))
        }
    };
    Ok(Statement {
        sid: value.get("Sid").and_then(Value::as_str).map(str::to_string),
        allow,
        actions: strings(value.get("Action"), "Action")?,
        not_actions: strings(value.get("NotAction"), "NotAction")?,
        resources: strings(value.get("Resource"), "Resource")?,
        any_principal: any_principal(value.get("Principal")),
        condition: value.get("Condition").filter(|c| !c.is_null()).cloned(),
    })
}

fn strings(value: Option<&Value>, name: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| PolicyError(format!("{name} holds a non-string")))
            })
            .collect(),
        Some(_) => Err(PolicyError(format!(
            "{name} is neither a string nor a list"
        ))),
    }
}

fn any_principal(principal: Option<&Value>) -> bool {
    let is_star = |v: &Value| match v {
        Value::String(s) => s == "*",
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some("*")),
        _ => false,
    };
    match principal {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(map)) => map.get("AWS").is_some_and(is_star),
        _ => false,
    }
}

/// Whether an action pattern covers `action` (`s3:*`, `*`, `s3:Get*`).
pub fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// IAM wildcard matching: `*` any run, `?` one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        // `*` is tried before a literal match: when the text holds a `*`
        // too, matching it literally forgot the wildcard, so `*` did not
        // match `*F` (found by fuzzing).
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Statement {
    /// Allows every action on every resource (CIS 1.16's "full admin").
    pub fn is_full_admin(&self) -> bool {
        self.allow
            && self.not_actions.is_empty()
            && self.actions.iter().any(|a| a == "*")
            && self.resources.iter().any(|r| r == "*")
    }

    /// Denies every S3 action to everyone when the request is not over TLS:
    /// `Deny`, principal `*`, action `s3:*` or `*`, resource covering the
    /// bucket's objects, and `aws:SecureTransport` = false.
    pub fn denies_insecure_transport(&self, bucket_arn: &str) -> bool {
        let covers_all_s3 = self
            .actions
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case("s3:*"));
        let objects = format!("{bucket_arn}/*");
        let covers_objects = self
            .resources
            .iter()
            .any(|r| wildcard_match(r, &objects) || r == "*");
        !self.allow
            && self.any_principal
            && self.not_actions.is_empty()
            && covers_all_s3
            && covers_objects
            && self.condition.as_ref().is_some_and(secure_transport_false)
    }
}

/// `{"Bool": {"aws:SecureTransport": "false"}}`, also under `BoolIfExists`,
/// with the key in any case and the value as a string, a boolean or a list.
fn secure_transport_false(condition: &Value) -> bool {
    let Some(map) = condition.as_object() else {
        return false;
    };
    map.iter()
        .filter(|(op, _)| *op == "Bool" || *op == "BoolIfExists")
        .filter_map(|(_, keys)| keys.as_object())
        .flat_map(|keys| keys.iter())
        .filter(|(key, _)| key.eq_ignore_ascii_case("aws:SecureTransport"))
        .any(|(_, value)| match value {
            Value::String(s) => s.eq_ignore_ascii_case("false"),
            Value::Bool(b) => !b,
            Value::Array(items) => items.iter().any(|i| {
                i.as_str().is_some_and(|s| s.eq_ignore_ascii_case("false"))
                    || i == &Value::Bool(false)
            }),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BUCKET: &str = "arn:aws:s3:::acme";

    fn tls_statement(overrides: Value) -> Value {
        let mut s = json!({
            "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::acme", "arn:aws:s3:::acme/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        });
        for (k, v) in overrides.as_object().expect("object").iter() {
            if v.is_null() {
                s.as_object_mut().expect("object").remove(k);
            } else {
                s[k] = v.clone();
            }
        }
        json!({"Version": "2012-10-17", "Statement": [s]})
    }

    #[test]
    fn recognises_tls_only_policies() {
        let cases = [
            (json!({}), true),
            (json!({"Principal": {"AWS": "*"}}), true),
            (json!({"Principal": {"AWS": ["*"]}}), true),
            (json!({"Action": "*"}), true),
            (json!({"Resource": "arn:aws:s3:::acme*"}), true),
            (json!({"Resource": "*"}), true),
            (
                json!({"Condition": {"BoolIfExists": {"aws:securetransport": false}}}),
                true,
            ),
            (
                json!({"Condition": {"Bool": {"aws:SecureTransport": ["false"]}}}),
                true,
            ),
            (json!({"Effect": "Allow"}), false),
            (json!({"Principal": {"AWS": "arn:aws:iam::1:root"}}), false),
            (json!({"Action": "s3:GetObject"}), false),
            (json!({"Resource": "arn:aws:s3:::other/*"}), false),
            (json!({"Resource": "arn:aws:s3:::acme"}), false),
            (
                json!({"Condition": {"Bool": {"aws:SecureTransport": "true"}}}),
                false,
            ),
            (
                json!({"Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}}}),
                false,
            ),
            (json!({"Condition": null}), false),
        ];
        for (overrides, want) in cases {
            let doc = tls_statement(overrides.clone());
            let got = statements(&doc)
                .expect("valid")
                .iter()
                .any(|s| s.denies_insecure_transport(BUCKET));
            assert_eq!(got, want, "{overrides}");
        }
    }

    #[test]
    fn recognises_full_admin() {
        let cases = [
            (
                json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}),
                true,
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": ["s3:*", "*"], "Resource": ["*"]}]}),
                true,
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
                false,
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::a"}]}),
                false,
            ),
            (
                json!({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}),
                false,
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}),
                false,
            ),
        ];
        for (doc, want) in cases {
            let got = statements(&doc)
                .expect("valid")
                .iter()
                .any(Statement::is_full_admin);
            assert_eq!(got, want, "{doc}");
        }
    }

    #[test]
    fn refuses_malformed_documents() {
        let bad = [
            json!({}),
            json!({"Statement": "x"}),
            json!({"Statement": [{"Effect": "Maybe", "Action": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": 5}]}),
            json!({"Statement": [{"Effect": "Allow", "Resource": [1]}]}),
        ];
        for doc in bad {
            assert!(statements(&doc).is_err(), "{doc}");
        }
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "anything", true),
            ("s3:Get*", "s3:getobject", false),
            ("arn:aws:s3:::acme*", "arn:aws:s3:::acme/*", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("", "", true),
            ("*a*b", "xxaxxb", true),
            // Found by fuzzing: a `*` in the text, facing one in the pattern.
            ("*", "*F", true),
            ("arn:aws:s3:::acme/*?", "arn:aws:s3:::acme/*", true),
            ("a*", "a*", true),
            ("a*c", "a*b", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(wildcard_match(p, t), want, "{p} {t}");
        }
        assert!(action_matches("s3:Get*", "s3:getobject"));
    }
}
