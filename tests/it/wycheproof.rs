#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Project Wycheproof vectors (C2SP/wycheproof, `testvectors_v1/`) run
//! against ward's JWS layer and the signature schemes under it.
//!
//! The vectors live outside the repository, in
//! `../shared/vectors/wycheproof/` (override with `WARD_WYCHEPROOF_DIR`).
//! When that directory is absent each test prints `SKIPPED: wycheproof:
//! ...` (`support::skipped`) and passes: the project's own tests stand
//! without it, and no script of the project installs it. A
//! `WARD_WYCHEPROOF_DIR` that names no directory fails instead: it was
//! asked for. When the vectors are present every case is accounted for
//! and any answer that differs from its label, beyond the documented
//! quirks below, fails the test.
//!
//! - `json_web_signature_test.json`: whole compact tokens through
//!   `Verifier::verify_signature` with a key built from the group's JWK.
//! - `ecdsa_secp256r1_sha256_p1363_test.json` (ES256), `ed25519_test.json`
//!   (EdDSA), `rsa_signature_2048_sha256_test.json` (RS256): raw message
//!   and signature through `jsonwebtoken::crypto::verify`, the call ward
//!   makes, with the key loaded by ward from PEM (the config path) and
//!   from JWK (the JWKS path) where the group gives one.

use crate::support;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use ward::config::{ProcessEnv, StaticKey};
use ward::jwt::{AllowedTypes, Key, KeySet, Verifier, keys};

/// Cases in `json_web_signature_test.json` where ward's answer differs
/// from the label on purpose: `(tcId, ward accepts, why)`.
const JWS_QUIRKS: &[(u64, bool, &str)] = &[
    // RFC 7520 Figure 20: the JWK is labelled `alg: PS256` but the token is
    // PS384. One key, one algorithm: the key decides, so ward refuses it
    // (AlgorithmMismatch). Groups 10 (plain) and 14 (with key_ops).
    (
        346,
        false,
        "PS256-labelled key, PS384 token: one key, one algorithm",
    ),
    (
        350,
        false,
        "PS256-labelled key, PS384 token: one key, one algorithm",
    ),
    // Labelled invalid ("invalidBase64Padding", "...InPayload") but the
    // token is byte-identical to valid case 357 (checked below).
    (
        367,
        true,
        "labelled invalid, byte-identical to valid case 357",
    ),
    (
        370,
        true,
        "labelled invalid, byte-identical to valid case 357",
    ),
    // Labelled valid but the header (372) or payload (373) contains `?`,
    // which a lenient decoder skips and ward's strict base64url rejects.
    (
        372,
        false,
        "labelled valid, `?` in the header is not base64url",
    ),
    (
        373,
        false,
        "labelled valid, `?` in the payload is not base64url",
    ),
];

/// Cases where ward's answer differs from the label by its own rule, not
/// listed in the vectors' README: `(tcId, ward accepts, why)`.
///
/// RFC 7515 allows an empty JWS payload, and these RS256/384/512 and
/// PS256/384/512 `emptyPayload` cases are labelled valid. ward verifies
/// JWTs, whose payload is a JSON object (never empty), and its parser
/// refuses an empty part before any key is touched: `Malformed("empty
/// part")`. Each case is checked below to have an empty payload.
const JWS_POLICY: &[(u64, bool, &str)] = &[
    (259, false, "empty payload: a JWT's claims are never empty"),
    (264, false, "empty payload: a JWT's claims are never empty"),
    (268, false, "empty payload: a JWT's claims are never empty"),
    (272, false, "empty payload: a JWT's claims are never empty"),
    (320, false, "empty payload: a JWT's claims are never empty"),
    (325, false, "empty payload: a JWT's claims are never empty"),
];

/// Private JWK members: dropped to build the verification key.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth"];

/// The vectors directory: `$WARD_WYCHEPROOF_DIR` (which must exist), else
/// `../shared/vectors/wycheproof` if it exists.
fn vectors_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WARD_WYCHEPROOF_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "WARD_WYCHEPROOF_DIR={} is not a directory",
            dir.display()
        );
        return Some(dir);
    }
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/wycheproof"
    ));
    dir.is_dir().then_some(dir)
}

/// The parsed vector file, or `None` (after saying so) when there is no
/// vectors directory. A present directory missing the file is an error.
fn load(file: &str) -> Option<Value> {
    let Some(dir) = vectors_dir() else {
        support::skipped(
            "wycheproof",
            &format!(
                "{file} not run: ../shared/vectors/wycheproof is absent \
                 and WARD_WYCHEPROOF_DIR is unset (optional vectors, not part of the project)"
            ),
        );
        return None;
    };
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is present but unreadable: {e}", path.display()));
    Some(serde_json::from_str(&text).expect("vector file is JSON"))
}

fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("missing string `{name}` in {v}"))
}

fn groups(doc: &Value) -> &[Value] {
    doc["testGroups"].as_array().expect("testGroups")
}

fn tests(group: &Value) -> &[Value] {
    group["tests"].as_array().expect("tests")
}

fn tc_id(test: &Value) -> u64 {
    test["tcId"].as_u64().expect("tcId")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
    Valid,
    Invalid,
    Acceptable,
}

fn label(test: &Value) -> Label {
    match str_field(test, "result") {
        "valid" => Label::Valid,
        "invalid" => Label::Invalid,
        "acceptable" => Label::Acceptable,
        other => panic!("tcId {}: unknown result `{other}`", tc_id(test)),
    }
}

/// Counts for one file, and every unexpected answer.
#[derive(Default)]
struct Tally {
    total: u64,
    checked: u64,
    valid_accepted: u64,
    invalid_rejected: u64,
    acceptable_accepted: u64,
    acceptable_rejected: u64,
    quirks: u64,
    policy: u64,
    skipped_json: u64,
    skipped_groups: u64,
    skipped_group_cases: u64,
    refused_key_cases: u64,
    reasons: BTreeMap<String, u64>,
    failures: Vec<String>,
}

impl Tally {
    /// Records one answer against its label.
    fn record(&mut self, id: u64, label: Label, accepted: bool, detail: &str) {
        self.checked += 1;
        match (label, accepted) {
            (Label::Valid, true) => self.valid_accepted += 1,
            (Label::Invalid, false) => self.invalid_rejected += 1,
            (Label::Acceptable, true) => self.acceptable_accepted += 1,
            (Label::Acceptable, false) => self.acceptable_rejected += 1,
            (Label::Valid, false) => self
                .failures
                .push(format!("tcId {id}: labelled valid, rejected ({detail})")),
            (Label::Invalid, true) => self
                .failures
                .push(format!("tcId {id}: labelled invalid, ACCEPTED ({detail})")),
        }
    }

    fn reason(&mut self, why: String) {
        *self.reasons.entry(why).or_default() += 1;
    }

    /// Prints the summary and fails on any unexpected answer.
    fn finish(self, file: &str, declared: u64) {
        println!("wycheproof {file}: {} cases", self.total);
        println!(
            "  checked {}: valid accepted {}, invalid rejected {}, acceptable accepted {} / rejected {}",
            self.checked,
            self.valid_accepted,
            self.invalid_rejected,
            self.acceptable_accepted,
            self.acceptable_rejected
        );
        println!(
            "  documented quirks {}, ward policy (empty payload) {}, JSON serialization (not label-checked) {}, unsupported-key groups {} ({} cases), rejected because ward refused the key {}",
            self.quirks,
            self.policy,
            self.skipped_json,
            self.skipped_groups,
            self.skipped_group_cases,
            self.refused_key_cases
        );
        if !self.reasons.is_empty() {
            let reasons: Vec<String> = self
                .reasons
                .iter()
                .map(|(why, n)| format!("{why} {n}"))
                .collect();
            println!("  rejections by reason: {}", reasons.join(", "));
        }
        for f in &self.failures {
            println!("  UNEXPECTED {f}");
        }
        assert_eq!(
            self.total, declared,
            "{file}: numberOfTests disagrees with the cases seen"
        );
        assert!(self.checked > 0, "{file}: no case was checked");
        assert!(
            self.failures.is_empty(),
            "{file}: {} unexpected result(s):\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn declared(doc: &Value) -> u64 {
    doc["numberOfTests"].as_u64().expect("numberOfTests")
}

/// The name of a `JwtError` variant, for the reason histogram.
fn variant(e: &ward::jwt::JwtError) -> String {
    let text = format!("{e:?}");
    text.split('(').next().unwrap_or(&text).to_owned()
}

// ---------------------------------------------------------------------------
// json_web_signature_test.json

/// Why a group's JWK cannot be tested at all: an algorithm or curve ward
/// does not implement. (A key ward *refuses* for policy, such as
/// `use: enc`, is tested: its tokens must all be rejected.)
fn unsupported(jwk: &Value) -> Option<String> {
    if let Some(alg) = jwk["alg"].as_str()
        && keys::parse_alg(alg).is_none()
    {
        return Some(format!("alg {alg}"));
    }
    match jwk["crv"].as_str() {
        None | Some("P-256" | "P-384" | "Ed25519") => None,
        Some(crv) => Some(format!("curve {crv}")),
    }
}

/// The verification key for a group: its `public` JWK when it has one,
/// else its `private` JWK with the private members removed. `oct` keys
/// are built directly, since `from_jwks` never takes a symmetric key.
/// `Err` carries ward's reason for refusing the key.
/// Why the JWKS loader skipped the group's key, one line.
fn joined(skipped: &[keys::Skipped]) -> String {
    let notes: Vec<String> = skipped.iter().map(ToString::to_string).collect();
    notes.join("; ")
}

fn jws_key(group: &Value) -> Result<Key, String> {
    let private = &group["private"];
    let jwk = match group.get("public") {
        Some(public) => {
            // The published half must be the private key's public half.
            for m in ["kty", "crv", "n", "e", "x", "y"] {
                assert_eq!(public.get(m), private.get(m), "public/private `{m}`");
            }
            public.clone()
        }
        None => {
            let mut public = private.clone();
            let obj = public.as_object_mut().expect("JWK object");
            for m in PRIVATE_MEMBERS {
                obj.remove(*m);
            }
            public
        }
    };
    if jwk["kty"] == "oct" {
        let secret = URL_SAFE_NO_PAD
            .decode(str_field(&jwk, "k"))
            .expect("oct `k` is base64url");
        let alg = keys::parse_alg(str_field(&jwk, "alg")).expect("oct key alg");
        return Ok(Key {
            kid: jwk["kid"].as_str().map(Into::into),
            alg,
            key: DecodingKey::from_secret(&secret),
            types: AllowedTypes::default(),
        });
    }
    let doc = serde_json::json!({ "keys": [jwk] }).to_string();
    let (mut keys, skipped) =
        keys::from_jwks(doc.as_bytes(), &AllowedTypes::default()).expect("JWKS document");
    match keys.pop() {
        Some(key) if keys.is_empty() => Ok(key),
        Some(_) => panic!("one JWK gave several keys"),
        None => Err(joined(&skipped)),
    }
}

#[test]
fn json_web_signature() {
    let file = "json_web_signature_test.json";
    let Some(doc) = load(file) else { return };
    let verifier = Verifier {
        max_token_bytes: 8192,
        rules: Default::default(),
    };
    let mut tally = Tally::default();

    // The 367/370 quirk rests on the bytes: check it rather than trust it.
    let by_id: BTreeMap<u64, &str> = groups(&doc)
        .iter()
        .flat_map(tests)
        .map(|t| (tc_id(t), str_field(t, "jws")))
        .collect();
    for id in [367, 370] {
        assert_eq!(by_id[&id], by_id[&357], "tcId {id} is no longer case 357");
    }
    for (id, _, _) in JWS_POLICY {
        let parts: Vec<&str> = by_id[id].split('.').collect();
        assert!(
            parts.len() == 3 && parts[1].is_empty(),
            "tcId {id} no longer has an empty payload"
        );
    }

    for group in groups(&doc) {
        let cases = tests(group);
        tally.total += cases.len() as u64;
        let jwk = group.get("private").or_else(|| group.get("public"));
        let jwk = jwk.expect("group has a JWK");
        if let Some(why) = unsupported(jwk) {
            println!(
                "  group `{}` skipped: {why} is not supported by ward ({} cases)",
                str_field(group, "comment"),
                cases.len()
            );
            tally.skipped_groups += 1;
            tally.skipped_group_cases += cases.len() as u64;
            continue;
        }
        let (set, refused) = match jws_key(group) {
            Ok(key) => (KeySet::new([Arc::new(key)]), None),
            Err(why) => (KeySet::new([]), Some(why)),
        };
        for test in cases {
            let id = tc_id(test);
            let jws = str_field(test, "jws");
            let label = label(test);
            let answer = verifier.verify_signature(jws, &set);
            let accepted = answer.is_ok();
            if let Err(e) = &answer {
                tally.reason(variant(e));
            }
            let detail = match (&answer, &refused) {
                (_, Some(why)) => format!("key refused: {why}"),
                (Ok(_), None) => "accepted".to_owned(),
                (Err(e), None) => format!("{e:?}"),
            };
            let json = jws.trim_start().starts_with('{')
                || test["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "JsonSerialization"));
            if json {
                // ward takes compact tokens only: whatever the label, a
                // JSON-serialized JWS must never pass.
                tally.skipped_json += 1;
                if accepted {
                    tally
                        .failures
                        .push(format!("tcId {id}: JSON serialization accepted"));
                }
                continue;
            }
            let quirk = JWS_QUIRKS.iter().find(|q| q.0 == id).map(|q| (q, "quirk"));
            let policy = JWS_POLICY.iter().find(|q| q.0 == id).map(|q| (q, "policy"));
            if let Some((&(_, want, why), kind)) = quirk.or(policy) {
                tally.checked += 1;
                if kind == "quirk" {
                    tally.quirks += 1;
                } else {
                    tally.policy += 1;
                }
                if accepted != want {
                    tally.failures.push(format!(
                        "tcId {id}: allowlisted {kind} ({why}) expected ward to {} it, got {detail}",
                        if want { "accept" } else { "reject" }
                    ));
                }
                continue;
            }
            if refused.is_some() {
                tally.refused_key_cases += 1;
            }
            tally.record(id, label, accepted, &detail);
        }
    }
    tally.finish(file, declared(&doc));
}

// ---------------------------------------------------------------------------
// Raw signature files

/// One raw-signature file: which groups fit the algorithm, and the keys.
struct RawSuite {
    file: &'static str,
    alg: Algorithm,
    /// Whether a group's parameters are the ones `alg` means.
    fits: fn(&Value) -> bool,
    /// The member holding the group's JWK, if any.
    jwk_member: &'static str,
}

/// Keys for one group, each with where it came from: the PEM through
/// ward's config loader, and the JWK through ward's JWKS loader.
fn raw_keys(suite: &RawSuite, group: &Value) -> Vec<(&'static str, Result<Key, String>)> {
    let mut keys = Vec::new();
    let cfg = StaticKey {
        kid: None,
        alg: format!("{:?}", suite.alg),
        pem_file: None,
        pem: Some(str_field(group, "publicKeyPem").to_owned()),
        secret: None,
        allowed_types: None,
    };
    let pem =
        keys::load_static(&cfg, &AllowedTypes::default(), &ProcessEnv).map_err(|e| e.to_string());
    keys.push(("pem", pem));
    if let Some(jwk) = group.get(suite.jwk_member) {
        let doc = serde_json::json!({ "keys": [jwk] }).to_string();
        let (mut loaded, skipped) =
            keys::from_jwks(doc.as_bytes(), &AllowedTypes::default()).expect("JWKS document");
        let key = loaded.pop().ok_or_else(|| joined(&skipped));
        keys.push(("jwk", key));
    }
    keys
}

fn run_raw(suite: &RawSuite) {
    let Some(doc) = load(suite.file) else { return };
    let mut tally = Tally::default();
    for group in groups(&doc) {
        let cases = tests(group);
        tally.total += cases.len() as u64;
        if !(suite.fits)(group) {
            println!(
                "  group skipped: parameters do not match {:?} ({} cases)",
                suite.alg,
                cases.len()
            );
            tally.skipped_groups += 1;
            tally.skipped_group_cases += cases.len() as u64;
            continue;
        }
        let keys = raw_keys(suite, group);
        for (source, key) in &keys {
            if let Ok(key) = key {
                assert_eq!(key.alg, suite.alg, "{source} key bound to another alg");
            }
        }
        for test in cases {
            let id = tc_id(test);
            let label = label(test);
            let msg = hex::decode(str_field(test, "msg")).expect("msg hex");
            let sig = hex::decode(str_field(test, "sig")).expect("sig hex");
            let sig = URL_SAFE_NO_PAD.encode(sig);
            let mut answers = Vec::new();
            for (source, key) in &keys {
                let answer = match key {
                    Ok(key) => {
                        match jsonwebtoken::crypto::verify(&sig, &msg, &key.key, suite.alg) {
                            Ok(true) => Ok(()),
                            Ok(false) => Err("signature does not verify".to_owned()),
                            Err(e) => Err(format!("error: {e}")),
                        }
                    }
                    Err(why) => Err(format!("key refused: {why}")),
                };
                answers.push((*source, answer));
            }
            let accepted = answers[0].1.is_ok();
            if answers.iter().any(|(_, a)| a.is_ok() != accepted) {
                tally
                    .failures
                    .push(format!("tcId {id}: PEM and JWK keys disagree: {answers:?}"));
            }
            if let Err(why) = &answers[0].1 {
                let why = if why.starts_with("error") {
                    "error"
                } else if why.starts_with("key refused") {
                    "key refused"
                } else {
                    "false"
                };
                tally.reason(why.to_owned());
            }
            if keys.iter().any(|(_, k)| k.is_err()) {
                tally.refused_key_cases += 1;
            }
            let comment = test["comment"].as_str().unwrap_or("");
            tally.record(id, label, accepted, &format!("{comment}: {answers:?}"));
        }
    }
    tally.finish(suite.file, declared(&doc));
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    run_raw(&RawSuite {
        file: "ecdsa_secp256r1_sha256_p1363_test.json",
        alg: Algorithm::ES256,
        fits: |g| {
            g["type"] == "EcdsaP1363Verify"
                && g["sha"] == "SHA-256"
                && g["publicKey"]["curve"] == "secp256r1"
        },
        jwk_member: "publicKeyJwk",
    });
}

#[test]
fn ed25519() {
    run_raw(&RawSuite {
        file: "ed25519_test.json",
        alg: Algorithm::EdDSA,
        fits: |g| g["type"] == "EddsaVerify" && g["publicKey"]["curve"] == "edwards25519",
        jwk_member: "publicKeyJwk",
    });
}

#[test]
fn rsa_2048_sha256_pkcs1() {
    run_raw(&RawSuite {
        file: "rsa_signature_2048_sha256_test.json",
        alg: Algorithm::RS256,
        fits: |g| g["type"] == "RsassaPkcs1Verify" && g["sha"] == "SHA-256" && g["keySize"] == 2048,
        jwk_member: "keyJwk",
    });
}
