//! Which RTSP cameras Confab may connect to: the guard against server-side request forgery.
//!
//! A room manager types in a camera URL and the ingest worker connects to it from inside the
//! deployment's network, so an unchecked URL would let anyone who manages a room make the
//! server talk to its own loopback, the cloud metadata service or the office LAN. The API checks
//! a URL when it is stored ([`CameraUrl::parse`], then [`resolve`]); the worker calls [`resolve`]
//! again right before each connection and connects only to the addresses it returns, so a name
//! that resolves differently later (DNS rebinding) gains nothing.
//!
//! Every address a name resolves to must be allowed: public unicast, or opened by the operator
//! (`CONFAB_CAMERA_ALLOW_PRIVATE_NETWORKS` for private networks, `CONFAB_CAMERA_ALLOWED_HOSTS`
//! for named hosts, addresses and CIDR blocks). Errors never repeat the URL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::{ConfigError, Source};

/// The longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// The port of `rtsp://` URLs without one (RFC 2326).
pub const RTSP_PORT: u16 = 554;
/// The port of `rtsps://` URLs without one (RFC 7826).
pub const RTSPS_PORT: u16 = 322;
/// How long a host name may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a camera URL is refused before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("rtsp_url is longer than 2048 bytes")]
    TooLong,
    #[error("rtsp_url is not a valid URL")]
    Malformed,
    #[error("rtsp_url must be an rtsp:// or rtsps:// URL")]
    Scheme,
    #[error("rtsp_url must name a host (a DNS name or an IP address) and a port from 1 to 65535")]
    Host,
    #[error("rtsp_url must not contain a user name or password; use the username and password fields")]
    CredentialsInUrl,
}

impl UrlError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::CredentialsInUrl => "credentials_in_url",
            _ => "invalid_rtsp_url",
        }
    }
}

/// The host part of a camera URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraHost {
    Ip(IpAddr),
    /// A DNS name, lower-case, as written (a trailing dot kept).
    Name(String),
}

/// A syntactically acceptable camera URL: `rtsp` or `rtsps`, a host, no user information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraUrl {
    url: url::Url,
    host: CameraHost,
    port: u16,
}

impl CameraUrl {
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        if raw.len() > MAX_URL_BYTES {
            return Err(UrlError::TooLong);
        }
        // The parser would quietly drop some of these; refuse them so what is stored is what
        // was sent.
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UrlError::Malformed);
        }
        let url = url::Url::parse(raw).map_err(|_| UrlError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::CredentialsInUrl);
        }
        let default_port = match url.scheme() {
            "rtsp" => RTSP_PORT,
            "rtsps" => RTSPS_PORT,
            _ => return Err(UrlError::Scheme),
        };
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) => CameraHost::Ip(ip.into()),
            Some(url::Host::Ipv6(ip)) => CameraHost::Ip(ip.into()),
            // `rtsp` is not a "special" scheme to the URL standard, so its host comes back as an
            // opaque string: an IPv4 literal is recognised here, anything else must be a name.
            Some(url::Host::Domain(name)) => match name.parse::<Ipv4Addr>() {
                Ok(ip) => CameraHost::Ip(ip.into()),
                Err(_) => CameraHost::Name(host_name(name).ok_or(UrlError::Host)?),
            },
            None => return Err(UrlError::Host),
        };
        let port = url.port().unwrap_or(default_port);
        if port == 0 {
            return Err(UrlError::Host);
        }
        Ok(Self { url, host, port })
    }

    /// The URL as stored and used (normalised by the parser).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    pub fn host(&self) -> &CameraHost {
        &self.host
    }

    /// The port given, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host` or `host:port` as it can be shown in logs and the audit log: no path, no query.
    pub fn host_for_display(&self) -> String {
        match &self.host {
            CameraHost::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            CameraHost::Ip(ip) => format!("{ip}:{}", self.port),
            CameraHost::Name(name) => format!("{name}:{}", self.port),
        }
    }
}

/// A DNS name made of letters, digits, `-`, `_` and dots, lower-cased; `None` otherwise
/// (percent-encoding, spaces and the like have no business in a camera's host name).
fn host_name(raw: &str) -> Option<String> {
    let name = raw.to_ascii_lowercase();
    let labels = name.strip_suffix('.').unwrap_or(&name);
    let valid = !labels.is_empty()
        && labels.len() <= 253
        && labels.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(name)
}

/// What kind of address an IP address is, as far as connecting to it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally routable unicast.
    Public,
    /// RFC 1918, IPv6 unique-local (fc00::/7) and the deprecated site-local fec0::/10.
    Private,
    /// Carrier-grade NAT, 100.64.0.0/10.
    SharedAddressSpace,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// The instance-metadata services of the clouds (169.254.169.254 and friends).
    CloudMetadata,
    Loopback,
    /// 0.0.0.0/8 and `::` (connecting to them reaches the local machine).
    Unspecified,
    Multicast,
    Broadcast,
    /// TEST-NET-1/2/3, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Everything else that is not public unicast: benchmarking, future use, protocol
    /// assignments, deprecated transition ranges, IPv6 outside 2000::/3.
    Reserved,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == Self::Public
    }

    /// What `CONFAB_CAMERA_ALLOW_PRIVATE_NETWORKS` opens: networks a camera may sit on. Not
    /// loopback, metadata services or the other special ranges; those need an explicit entry in
    /// `CONFAB_CAMERA_ALLOWED_HOSTS`.
    pub fn is_private_network(self) -> bool {
        matches!(self, Self::Private | Self::SharedAddressSpace | Self::LinkLocal)
    }

    /// "a loopback address", for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Public => "a public address",
            Self::Private => "a private-network address",
            Self::SharedAddressSpace => "a carrier-grade NAT address",
            Self::LinkLocal => "a link-local address",
            Self::CloudMetadata => "a cloud metadata address",
            Self::Loopback => "a loopback address",
            Self::Unspecified => "an unspecified address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "a broadcast address",
            Self::Documentation => "a documentation address",
            Self::Reserved => "a reserved address",
        }
    }
}

/// The class of `ip`; IPv4 addresses inside IPv6 (mapped, NAT64, 6to4) are judged as IPv4.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    const METADATA: [[u8; 4]; 3] = [[169, 254, 169, 254], [169, 254, 170, 2], [100, 100, 100, 200]];
    let ranges: [([u8; 4], u32, AddressClass); 16] = [
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedAddressSpace),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Reserved),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    if METADATA.contains(&ip.octets()) {
        return CloudMetadata;
    }
    ranges.iter().find(|(net, prefix, _)| in_v4(ip, *net, *prefix)).map_or(Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let embedded_v4 = || Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32);
    let net = |text: &str| text.parse::<Ipv6Addr>().expect("a valid network literal");
    if ip == Ipv6Addr::UNSPECIFIED {
        Unspecified
    } else if ip == Ipv6Addr::LOCALHOST {
        Loopback
    } else if ip == net("fd00:ec2::254") {
        CloudMetadata
    } else if in_v6(ip, net("::"), 96) {
        // IPv4-compatible addresses, deprecated.
        Reserved
    } else if in_v6(ip, net("64:ff9b::"), 96) {
        // NAT64 well-known prefix: the packet goes to the embedded IPv4 address.
        classify_v4(embedded_v4())
    } else if in_v6(ip, net("2002::"), 16) {
        // 6to4: the relay delivers to the IPv4 address in bits 16..48.
        classify_v4(Ipv4Addr::from(((u128::from(ip) >> 80) & 0xffff_ffff) as u32))
    } else if in_v6(ip, net("2001:db8::"), 32) || in_v6(ip, net("3fff::"), 20) {
        Documentation
    } else if in_v6(ip, net("fc00::"), 7) || in_v6(ip, net("fec0::"), 10) || in_v6(ip, net("64:ff9b:1::"), 48) {
        Private
    } else if in_v6(ip, net("fe80::"), 10) {
        LinkLocal
    } else if in_v6(ip, net("ff00::"), 8) {
        Multicast
    } else if in_v6(ip, net("2001::"), 23) || !in_v6(ip, net("2000::"), 3) {
        // Protocol assignments (Teredo and others), and everything outside global unicast.
        Reserved
    } else {
        Public
    }
}

/// One entry of `CONFAB_CAMERA_ALLOWED_HOSTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedHost {
    /// Every address this name resolves to is allowed.
    Name(String),
    /// An address (full-length prefix) or a CIDR block.
    Net { ip: IpAddr, prefix: u8 },
}

impl AllowedHost {
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        let (address, prefix) = match entry.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (entry, None),
        };
        let address = address.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(address);
        match address.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                let full = if ip.is_ipv4() { 32 } else { 128 };
                let prefix = prefix.unwrap_or(full);
                (prefix <= full).then_some(Self::Net { ip, prefix })
            }
            Err(_) if prefix.is_none() => {
                let name = host_name(address)?;
                Some(Self::Name(name.trim_end_matches('.').to_owned()))
            }
            Err(_) => None,
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip.to_canonical()) {
            (Self::Net { ip: IpAddr::V4(net), prefix }, IpAddr::V4(ip)) => in_v4(ip, net.octets(), u32::from(*prefix)),
            (Self::Net { ip: IpAddr::V6(net), prefix }, IpAddr::V6(ip)) => in_v6(ip, *net, u32::from(*prefix)),
            _ => false,
        }
    }
}

/// An entry of the allowed-hosts list that is neither a host name, an IP address nor a CIDR
/// block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a host name, an IP address or a CIDR block")]
pub struct InvalidAllowedHost(pub String);

/// Which non-public destinations the operator opened to cameras.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    allow_private: bool,
    allowed: Vec<AllowedHost>,
    entries: Vec<String>,
}

impl HostPolicy {
    /// `allow_private` opens private networks (RFC 1918, CGNAT, IPv6 ULA, link-local);
    /// `allowed_hosts` lists host names, IP addresses and CIDR blocks that are always allowed.
    pub fn new(allow_private: bool, allowed_hosts: &[String]) -> Result<Self, InvalidAllowedHost> {
        let allowed = allowed_hosts
            .iter()
            .map(|entry| AllowedHost::parse(entry).ok_or_else(|| InvalidAllowedHost(entry.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Self { allow_private, allowed, entries: allowed_hosts.to_vec() })
    }

    /// `CONFAB_CAMERA_ALLOWED_HOSTS` (comma-separated) and `CONFAB_CAMERA_ALLOW_PRIVATE_NETWORKS`.
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let raw = src.string("CONFAB_CAMERA_ALLOWED_HOSTS", "");
        let entries: Vec<String> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let allow_private = src.parse("CONFAB_CAMERA_ALLOW_PRIVATE_NETWORKS", false)?;
        Self::new(allow_private, &entries)
            .map_err(|e| crate::config::invalid("CONFAB_CAMERA_ALLOWED_HOSTS", &raw, e.to_string()))
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The allowed-hosts entries as configured.
    pub fn allowed_hosts(&self) -> &[String] {
        &self.entries
    }

    /// Whether a connection to `ip`, which `url`'s host is or resolved to, is allowed.
    pub fn check(&self, url: &CameraUrl, ip: IpAddr) -> Result<(), HostError> {
        let class = classify(ip);
        let named = match url.host() {
            CameraHost::Name(name) => {
                let name = name.trim_end_matches('.');
                self.allowed.iter().any(|entry| matches!(entry, AllowedHost::Name(allowed) if allowed == name))
            }
            CameraHost::Ip(_) => false,
        };
        if class.is_public()
            || (self.allow_private && class.is_private_network())
            || named
            || self.allowed.iter().any(|entry| entry.contains(ip))
        {
            Ok(())
        } else {
            Err(HostError::NotAllowed(class))
        }
    }
}

/// Why a camera's host may not be connected to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error(
        "the camera's host is or resolves to {}, which cameras may not use unless an administrator allows it",
        .0.describe()
    )]
    NotAllowed(AddressClass),
    #[error("the camera's host name could not be resolved")]
    Unresolvable,
}

impl HostError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAllowed(_) => "camera_host_not_allowed",
            Self::Unresolvable => "camera_host_unresolvable",
        }
    }
}

/// The addresses to connect to for `url`, each checked against `policy`: refused if any
/// address the host resolves to is not allowed (so the result does not depend on which
/// address a resolver lists first). Connect only to the addresses returned.
pub async fn resolve(url: &CameraUrl, policy: &HostPolicy) -> Result<Vec<SocketAddr>, HostError> {
    let addresses: Vec<SocketAddr> = match url.host() {
        CameraHost::Ip(ip) => vec![SocketAddr::new(*ip, url.port())],
        CameraHost::Name(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), url.port()));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(_)) | Err(_) => return Err(HostError::Unresolvable),
            }
        }
    };
    if addresses.is_empty() {
        return Err(HostError::Unresolvable);
    }
    for address in &addresses {
        policy.check(url, address.ip())?;
    }
    let mut unique = Vec::with_capacity(addresses.len());
    for address in addresses {
        if !unique.contains(&address) {
            unique.push(address);
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressClass::*;

    fn class(ip: &str) -> AddressClass {
        classify(ip.parse().unwrap())
    }

    fn policy(allow_private: bool, allowed: &[&str]) -> HostPolicy {
        HostPolicy::new(allow_private, &allowed.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn check(policy: &HostPolicy, url: &str, ip: &str) -> Result<(), HostError> {
        policy.check(&CameraUrl::parse(url).unwrap(), ip.parse().unwrap())
    }

    #[test]
    fn camera_urls_are_rtsp_with_a_host_and_no_credentials() {
        let url = CameraUrl::parse("rtsp://Cam-1.Example.org/stream?channel=1").unwrap();
        assert_eq!(url.host(), &CameraHost::Name("cam-1.example.org".into()));
        assert_eq!((url.scheme(), url.port()), ("rtsp", 554));
        assert_eq!(url.host_for_display(), "cam-1.example.org:554");
        assert_eq!(CameraUrl::parse("rtsps://8.8.8.8/s").unwrap().port(), 322);
        assert_eq!(
            CameraUrl::parse("rtsp://8.8.8.8:8554/s").unwrap().host(),
            &CameraHost::Ip("8.8.8.8".parse().unwrap())
        );
        let v6 = CameraUrl::parse("rtsp://[2001:4860:4860::8888]:10554/").unwrap();
        assert_eq!(v6.host_for_display(), "[2001:4860:4860::8888]:10554");
        for (raw, error) in [
            ("http://8.8.8.8/stream", UrlError::Scheme),
            ("file:///etc/passwd", UrlError::Scheme),
            ("rtsp:/stream", UrlError::Host),
            ("rtsp:///stream", UrlError::Host),
            ("rtsp://8.8.8.8:0/", UrlError::Host),
            ("rtsp://cam%2eexample.org/", UrlError::Host),
            ("rtsp://8.8.8.8:99999/", UrlError::Malformed),
            ("not a url", UrlError::Malformed),
            (" rtsp://8.8.8.8/", UrlError::Malformed),
            ("rtsp://8.8.8.8/\0", UrlError::Malformed),
            ("rtsp://8.8.8.8/a\r\nSET_PARAMETER", UrlError::Malformed),
            ("rtsp://admin:secret@8.8.8.8/stream", UrlError::CredentialsInUrl),
            ("rtsp://admin@8.8.8.8/stream", UrlError::CredentialsInUrl),
            ("rtsp://:secret@8.8.8.8/stream", UrlError::CredentialsInUrl),
        ] {
            assert_eq!(CameraUrl::parse(raw), Err(error.clone()), "{raw}");
        }
        let long = format!("rtsp://8.8.8.8/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(CameraUrl::parse(&long), Err(UrlError::TooLong));
        assert_eq!(UrlError::CredentialsInUrl.code(), "credentials_in_url");
        assert!(!UrlError::CredentialsInUrl.to_string().contains("secret"));
    }

    #[test]
    fn ipv4_special_ranges_are_not_public() {
        for (ip, expected) in [
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("100.63.255.255", Public),
            ("100.128.0.0", Public),
            ("172.32.0.1", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.10", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("169.254.1.1", LinkLocal),
            ("169.254.169.254", CloudMetadata),
            ("100.100.100.200", CloudMetadata),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.10", Documentation),
            ("198.18.0.1", Reserved),
            ("192.0.0.8", Reserved),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_special_ranges_and_embedded_ipv4_are_not_public() {
        for (ip, expected) in [
            ("2001:4860:4860::8888", Public),
            ("2a00:1450:4001::1", Public),
            ("::1", Loopback),
            ("::", Unspecified),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", CloudMetadata),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Reserved),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::808:808", Public),
            ("2002:7f00:1::1", Loopback),
            ("2002:c0a8:101::1", Private),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fd00:ec2::254", CloudMetadata),
            ("fe80::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001::1", Reserved),
            ("100::1", Reserved),
            ("4000::1", Reserved),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn private_networks_open_only_when_the_operator_says_so() {
        let closed = policy(false, &[]);
        let open = policy(true, &[]);
        for ip in ["10.0.0.5", "192.168.1.2", "100.64.1.1", "169.254.3.4", "fd00::5", "::ffff:10.0.0.5"] {
            assert_eq!(
                check(&closed, "rtsp://cam.lan/", ip),
                Err(HostError::NotAllowed(classify(ip.parse().unwrap())))
            );
            assert_eq!(check(&open, "rtsp://cam.lan/", ip), Ok(()), "{ip}");
        }
        // Private networks are not the machine itself, nor the metadata service.
        for ip in ["127.0.0.1", "::1", "0.0.0.0", "169.254.169.254", "224.0.0.1", "203.0.113.10"] {
            assert!(check(&open, "rtsp://cam.lan/", ip).is_err(), "{ip}");
        }
        assert_eq!(check(&closed, "rtsp://cam.example.org/", "8.8.8.8"), Ok(()));
    }

    #[test]
    fn allowed_hosts_open_names_addresses_and_blocks() {
        let allowed = policy(false, &["Cam.Lan.", "127.0.0.1", "10.20.0.0/16", "[fd00::]/8", "::ffff:192.168.9.9"]);
        assert_eq!(check(&allowed, "rtsp://cam.lan/", "10.99.0.1"), Ok(()));
        assert_eq!(check(&allowed, "rtsp://CAM.lan./", "127.0.0.1"), Ok(()));
        assert!(check(&allowed, "rtsp://other.lan/", "10.99.0.1").is_err());
        assert_eq!(check(&allowed, "rtsp://127.0.0.1/", "127.0.0.1"), Ok(()));
        assert!(check(&allowed, "rtsp://127.0.0.2/", "127.0.0.2").is_err());
        assert_eq!(check(&allowed, "rtsp://10.20.3.4/", "10.20.3.4"), Ok(()));
        assert_eq!(check(&allowed, "rtsp://[::ffff:10.20.3.4]/", "::ffff:10.20.3.4"), Ok(()));
        assert!(check(&allowed, "rtsp://10.21.0.1/", "10.21.0.1").is_err());
        assert_eq!(check(&allowed, "rtsp://[fd12::1]/", "fd12::1"), Ok(()));
        assert_eq!(check(&allowed, "rtsp://192.168.9.9/", "192.168.9.9"), Ok(()));
        for bad in ["10.0.0.0/33", "::/129", "cam lan", "cam.lan/8", "", "*.lan"] {
            assert!(HostPolicy::new(false, &[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_policy_reads_its_two_keys() {
        let src = Source::from_vars([
            ("CONFAB_CAMERA_ALLOWED_HOSTS".to_owned(), " cams.lan , 10.0.0.0/8 ,".to_owned()),
            ("CONFAB_CAMERA_ALLOW_PRIVATE_NETWORKS".to_owned(), "true".to_owned()),
        ])
        .unwrap();
        let policy = HostPolicy::from_source(&src).unwrap();
        assert!(policy.allow_private());
        assert_eq!(policy.allowed_hosts(), ["cams.lan", "10.0.0.0/8"]);
        let src = Source::from_vars([("CONFAB_CAMERA_ALLOWED_HOSTS".to_owned(), "10.0.0.0/99".to_owned())]).unwrap();
        let err = HostPolicy::from_source(&src).unwrap_err().to_string();
        assert!(err.contains("CONFAB_CAMERA_ALLOWED_HOSTS"), "{err}");
        assert!(!HostPolicy::from_source(&Source::default()).unwrap().allow_private());
    }

    #[tokio::test]
    async fn every_resolved_address_is_checked() {
        let closed = policy(false, &[]);
        let url = |raw: &str| CameraUrl::parse(raw).unwrap();
        let public = resolve(&url("rtsp://8.8.8.8/live"), &closed).await.unwrap();
        assert_eq!(public, ["8.8.8.8:554".parse().unwrap()]);
        for raw in ["rtsp://127.0.0.1/", "rtsp://localhost:8554/", "rtsp://[::1]/", "rtsp://[::ffff:127.0.0.1]/"] {
            assert!(matches!(resolve(&url(raw), &closed).await, Err(HostError::NotAllowed(_))), "{raw}");
        }
        let local = policy(false, &["localhost"]);
        let found = resolve(&url("rtsp://localhost:8554/"), &local).await.unwrap();
        assert!(found.iter().all(|a| a.port() == 8554 && a.ip().is_loopback()), "{found:?}");
        let unknown = resolve(&url("rtsp://camera.invalid/"), &closed).await;
        assert_eq!(unknown, Err(HostError::Unresolvable));
    }
}
