//! `ward explain`'s flags, and its exit status: 0 when the request would
//! be allowed, 2 when denied, 1 when it cannot be explained. Reading the
//! request and explaining it is `crate::explain`'s.

use super::{Failure, Outcome};
use crate::explain::ExplainRequest;
use clap::Args;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ExplainArgs {
    /// The YAML config file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// The request URL: https://host/path?query, or /path with -H 'host: ...'.
    #[arg(value_name = "URL", required_unless_present = "request")]
    url: Option<String>,
    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET")]
    method: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The address Envoy would report as the peer (source.address).
    #[arg(long, value_name = "IP")]
    source_ip: Option<IpAddr>,
    /// The peer's certificate principal Envoy would report
    /// (source.principal), e.g. spiffe://cluster.local/ns/shop/sa/orders.
    #[arg(long, value_name = "PRINCIPAL")]
    principal: Option<String>,
    /// The `ward_policy` an Envoy route sets in context_extensions.
    #[arg(long, value_name = "NAME")]
    envoy_policy: Option<String>,
    /// Read the request from a JSON file instead: {"method", "url",
    /// "headers": {name: value or [values]}, "source_ip", "principal",
    /// "envoy_policy"}.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["url", "headers", "source_ip", "principal", "envoy_policy"])]
    request: Option<PathBuf>,
}

/// Prints the explanation of the request the flags (or `--request`) give.
pub fn run(args: &ExplainArgs) -> Outcome {
    let config = super::config(&args.config)?;
    let request = match &args.request {
        Some(path) => ExplainRequest::from_file(path, &args.method),
        None => ExplainRequest::from_flags(
            &args.method,
            args.url.as_deref().unwrap_or_default(),
            &args.headers,
            args.source_ip,
            args.envoy_policy.as_deref(),
        )
        .map(|request| ExplainRequest {
            principal: args.principal.clone(),
            ..request
        }),
    }
    .map_err(|e| Failure(e.to_string()))?;
    let explained = super::block_on(
        1,
        crate::explain::explain(&config, &request, crate::unix_now()),
    )?
    .map_err(|e| Failure(e.to_string()))?;
    print!("{}", explained.text);
    Ok(if explained.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
