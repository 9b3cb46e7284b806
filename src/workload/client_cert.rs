//! RFC 9440 `Client-Cert`: the client certificate a trusted hop saw, as
//! a structured-field byte sequence (`:` base64 of the DER `:`).
//!
//! The certificate is parsed by `x509-parser`, never by hand, and its
//! principal taken as Envoy takes `source.principal`: the first URI
//! subject alternative name, else the first DNS name, else the subject.
//! ward does not verify the certificate: the hop did, and is trusted for
//! it; a value that is not one DER certificate is malformed.

use super::WorkloadError;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use x509_parser::extensions::GeneralName;

/// RFC 8941 §3.3.5: standard base64; padding may be left out.
const SF_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The principal of the certificate in a `Client-Cert` value; none when
/// it names none.
pub fn principal_of_client_cert(value: &str) -> Result<Option<String>, WorkloadError> {
    let inner = value
        .trim_matches([' ', '\t'])
        .strip_prefix(':')
        .and_then(|v| v.strip_suffix(':'))
        .ok_or(WorkloadError::Malformed(
            "Client-Cert is not a byte sequence (`:base64:`)",
        ))?;
    let der = SF_BASE64
        .decode(inner)
        .map_err(|_| WorkloadError::Malformed("Client-Cert is not base64"))?;
    let (rest, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| WorkloadError::Malformed("Client-Cert is not an X.509 certificate"))?;
    if !rest.is_empty() {
        return Err(WorkloadError::Malformed(
            "Client-Cert has bytes after its certificate",
        ));
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|_| WorkloadError::Malformed("Client-Cert's subject alternative names"))?;
    let names = san.map(|s| s.value.general_names.as_slice()).unwrap_or(&[]);
    let uri = names.iter().find_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    let dns = names.iter().find_map(|n| match n {
        GeneralName::DNSName(d) => Some(*d),
        _ => None,
    });
    let subject = cert.subject().to_string();
    let found = uri.or(dns).map(str::to_string).or(Some(subject));
    Ok(found.filter(|s| !s.is_empty()))
}
