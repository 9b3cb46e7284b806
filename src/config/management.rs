//! The `management` section: what ward offers the systems around it
//! besides checks. Here, the OpenID Connect back-channel logout endpoint
//! (`backchannel_logout`); the management API's listener and its callers'
//! authentication join this section.

use super::backchannel::BackchannelConfig;
use serde::Deserialize;

/// Management surfaces; each is off unless configured.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementConfig {
    /// OpenID Connect Back-Channel Logout 1.0: an identity provider's
    /// logout revokes the ward sessions recorded for it.
    pub backchannel_logout: Option<BackchannelConfig>,
}
