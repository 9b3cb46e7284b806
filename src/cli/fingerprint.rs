//! `ward fingerprint`: the device fingerprint ward computes for the
//! attributes given, so a login service can check its own implementation.
//! The value comes from [`crate::fingerprint::of_client`], the function a
//! check uses once it knows the client IP; the IP given here is taken as
//! that resolved client IP, so no trusted hops are counted.

use super::{Failure, Outcome};
use crate::config::FingerprintConfig;
use crate::fingerprint::{self, Version};
use crate::request::Headers;
use clap::Args;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct FingerprintArgs {
    /// The client IP address (after trusted-hop resolution).
    #[arg(long)]
    ip: Option<String>,
    /// The User-Agent header value.
    #[arg(long)]
    user_agent: Option<String>,
    /// The Accept-Language header value.
    #[arg(long)]
    accept_language: Option<String>,
    /// Any other attribute header, as NAME=VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Take attributes and masks from this config's sessions.fingerprint.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the v1 fingerprint (bare hex, every value byte for byte), as
    /// sessions written before `fp2:` store it.
    #[arg(long)]
    v1: bool,
}

/// Prints the fingerprint: `fp2:<hex>`, or with `--v1` v1's bare hex.
pub fn run(args: &FingerprintArgs) -> Outcome {
    let config = match &args.config {
        Some(path) => super::config(path)?.sessions.fingerprint,
        None => FingerprintConfig::default(),
    };
    let headers = headers(args)?;
    let client = match args.ip.as_deref().map(str::parse::<IpAddr>) {
        None => None,
        Some(Ok(ip)) => Some(ip),
        Some(Err(_)) => return Err(Failure("--ip is not an IP address".into())),
    };
    let version = if args.v1 { Version::V1 } else { Version::V2 };
    let headers = Headers::owned(&headers);
    let fp = fingerprint::of_client(&config, version, client, |name| headers.get(name));
    println!("{fp}");
    Ok(ExitCode::SUCCESS)
}

/// The attribute headers given, names lowercase; a later value of a name
/// wins (`Headers` looks from the end).
fn headers(args: &FingerprintArgs) -> Result<Vec<(String, String)>, Failure> {
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(ua) = &args.user_agent {
        headers.push(("user-agent".to_string(), ua.clone()));
    }
    if let Some(al) = &args.accept_language {
        headers.push(("accept-language".to_string(), al.clone()));
    }
    for pair in &args.headers {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(Failure(format!("--header takes NAME=VALUE, got {pair:?}")));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.to_string()));
    }
    Ok(headers)
}
