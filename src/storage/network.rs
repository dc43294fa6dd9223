//! Failures to reach a service, and its refusals, in sentences. The HTTP stacks underneath (hyper, rustls, the AWS
//! SDK) report them as chains of errors whose `Debug` text is meant for their own developers;
//! a person needs to know which of a few things happened and what to check: nothing listens
//! there, the name does not resolve, the certificate is not trusted, the clock is wrong.
//!
//! Only `Display` text of the chain is ever read, and only to tell these cases apart.

use std::error::Error;
use std::time::{Duration, SystemTime};

use super::{BackendKind, ErrorKind, Operation, StorageError};

/// How far a clock may be off before a signed request is refused: SigV4 allows 15 minutes.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(15 * 60);

/// What a service said in an error answer, for a sentence: "403 rateLimitExceeded: Rate limit
/// exceeded", or as much of it as there is.
pub fn said(status: u16, code: &str, message: &str) -> String {
    match (code, message) {
        ("", "") => format!("{status} without saying why"),
        ("", message) => format!("{status}: {message}"),
        (code, "") => format!("{status} {code}"),
        (code, message) => format!("{status} {code}: {message}"),
    }
}

/// Every message in `error`'s chain of sources, outermost first, each once: wrappers often
/// repeat their source's words.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if !text.is_empty() && !parts.iter().any(|seen| seen.contains(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

/// The innermost message of `error`'s chain: usually the operating system's words.
fn innermost(error: &(dyn Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// What a request that got no answer ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// Worth retrying, but for a certificate this computer does not trust.
    pub kind: ErrorKind,
    /// A sentence naming the host and what to check.
    pub message: String,
    /// The address itself may be wrong: nothing listens there, the name does not resolve, the
    /// server speaks no TLS, or its certificate is not for it.
    pub check_address: bool,
}

/// A request to `host` that got no answer. `timed_out` is what the HTTP client knows about the
/// error beyond its chain.
pub fn unreachable(host: &str, error: &(dyn Error + 'static), timed_out: bool) -> Unreachable {
    let found = |kind, message: String, check_address| Unreachable {
        kind,
        message,
        check_address,
    };
    let io_kind = io_kind(error);
    let words = chain(error).to_ascii_lowercase();
    use std::io::ErrorKind as Io;
    if io_kind == Some(Io::ConnectionRefused) || words.contains("connection refused") {
        return found(
            ErrorKind::Temporary,
            format!(
                "{host} refused the connection: is the server running, and is its address right?"
            ),
            true,
        );
    }
    if [
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no such host",
        "nodename nor servname",
        "name resolution",
    ]
    .iter()
    .any(|said| words.contains(said))
    {
        return found(
            ErrorKind::Temporary,
            format!("the name {host} does not resolve to an address: check that it is spelled right and that this computer is online"),
            true,
        );
    }
    if words.contains("certificate") {
        let why = if words.contains("unknownissuer")
            || words.contains("unknown issuer")
            || words.contains("self-signed")
            || words.contains("self signed")
            // A self-made certificate is its own authority: rustls calls that a CA used as
            // an end entity.
            || words.contains("causedasendentity")
        {
            "it is self-signed or from an authority this computer does not trust"
        } else if words.contains("expired") {
            "it has expired"
        } else if words.contains("notvalidforname") || words.contains("not valid for name") {
            "it is for another name than the one in the address"
        } else {
            // Verifiers often say no more than that they refused it.
            "it is self-signed, from an authority this computer does not trust, expired, or for another name"
        };
        return found(
            ErrorKind::Config,
            format!("{host}'s TLS certificate is not accepted ({why}): check the address, or give the server a certificate this computer trusts"),
            true,
        );
    }
    if [
        "tls",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
        "ssl",
    ]
    .iter()
    .any(|said| words.contains(said))
    {
        return found(
            ErrorKind::Temporary,
            format!("the secure (TLS) connection to {host} failed: check the address (https:// for a server with TLS, http:// for one without)"),
            true,
        );
    }
    if timed_out || io_kind == Some(Io::TimedOut) || words.contains("timed out") {
        return found(
            ErrorKind::Temporary,
            format!("{host} did not answer in time: check this computer's network and the address"),
            false,
        );
    }
    if matches!(
        io_kind,
        Some(Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::UnexpectedEof)
    ) || words.contains("connection reset")
        || words.contains("connection closed")
    {
        return found(
            ErrorKind::Temporary,
            format!("the connection to {host} was cut off"),
            false,
        );
    }
    found(
        ErrorKind::Temporary,
        format!("{host} cannot be reached: {}", innermost(error)),
        false,
    )
}

/// The kind of the first I/O error in `error`'s chain.
fn io_kind(error: &(dyn Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = error.source();
    }
    None
}

/// The host of `url` (with its port), never its path or query: those may carry a session or a
/// signature.
pub fn host_of(url: Option<&reqwest::Url>) -> String {
    url.and_then(|url| {
        url.host_str().map(|host| match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        })
    })
    .unwrap_or_else(|| "the server".to_owned())
}

/// A request to a JSON API that got no answer, as a storage error.
pub fn transport_failure(
    service: BackendKind,
    operation: Operation,
    target: &(dyn std::fmt::Display + Sync),
    error: reqwest::Error,
) -> StorageError {
    let host = host_of(error.url());
    let found = unreachable(&host, &error, error.is_timeout());
    StorageError::new(service, operation, found.kind, target, found.message)
}

/// When a server refused a request and its `Date` is far from this computer's clock, the clock is
/// why (signed requests carry the time they were made): a sentence saying so.
pub fn clock_skew(server_date: Option<&str>, now: SystemTime) -> Option<String> {
    let server = httpdate::parse_http_date(server_date?.trim()).ok()?;
    let (behind, off) = match server.duration_since(now) {
        Ok(ahead) => (true, ahead),
        Err(error) => (false, error.duration()),
    };
    if off <= CLOCK_TOLERANCE {
        return None;
    }
    Some(format!(
        "this computer's clock is {} {} the server's: set the clock (turn on automatic date and time), then try again",
        span(off),
        if behind { "behind" } else { "ahead of" }
    ))
}

/// A duration as a person says it: "30 days", "5 hours", "20 minutes".
fn span(duration: Duration) -> String {
    let minutes = (duration.as_secs() + 30) / 60;
    let (count, unit) = if minutes >= 2 * 24 * 60 {
        ((minutes + 12 * 60) / (24 * 60), "day")
    } else if minutes >= 2 * 60 {
        ((minutes + 30) / 60, "hour")
    } else {
        (minutes, "minute")
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(&'static str, std::io::Error);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn each_failure_gets_its_sentence() {
        let refused = Wrapper(
            "client error (Connect)",
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        let found = unreachable("nas:3900", &refused, false);
        assert_eq!(found.kind, ErrorKind::Temporary);
        assert!(found.check_address);
        assert!(
            found.message.starts_with("nas:3900 refused the connection"),
            "{}",
            found.message
        );

        let dns = Wrapper(
            "dns error",
            std::io::Error::other(
                "failed to lookup address information: Name or service not known",
            ),
        );
        assert!(unreachable("nas.invalid", &dns, false)
            .message
            .contains("does not resolve"));

        let certificate = Wrapper(
            "client error (Connect)",
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "invalid peer certificate: UnknownIssuer",
            ),
        );
        let found = unreachable("nas:9000", &certificate, false);
        assert_eq!(
            found.kind,
            ErrorKind::Config,
            "an untrusted certificate stays so"
        );
        assert!(found.message.contains("self-signed"), "{}", found.message);

        let odd = Wrapper("client error", std::io::Error::other("something else"));
        let found = unreachable("nas", &odd, false);
        assert_eq!(found.message, "nas cannot be reached: something else");
        assert!(!found.check_address);
    }

    #[test]
    fn a_chain_says_each_thing_once() {
        let error = Wrapper(
            "io error: Connection refused (os error 111)",
            std::io::Error::from_raw_os_error(111),
        );
        assert_eq!(chain(&error), "io error: Connection refused (os error 111)");
    }

    #[test]
    fn a_far_off_clock_is_named_with_its_distance() {
        let now = httpdate::parse_http_date("Tue, 01 Dec 2026 18:00:00 GMT").unwrap();
        assert_eq!(
            clock_skew(Some("Thu, 31 Dec 2026 18:00:00 GMT"), now).unwrap(),
            "this computer's clock is 30 days behind the server's: set the clock (turn on automatic date and time), then try again"
        );
        assert!(clock_skew(Some("Tue, 01 Dec 2026 15:00:00 GMT"), now)
            .unwrap()
            .contains("3 hours ahead of"));
        assert_eq!(clock_skew(Some("Tue, 01 Dec 2026 18:10:00 GMT"), now), None);
        assert_eq!(clock_skew(Some("not a date"), now), None);
        assert_eq!(clock_skew(None, now), None);
    }
}
