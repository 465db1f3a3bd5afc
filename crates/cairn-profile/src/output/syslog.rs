//! Syslog log targets (§14): `syslog:` (local socket), `syslog://host[:514]` (UDP),
//! `syslog-tcp://host[:514]`, `udp://host:port`, `tcp://host:port`. One message per line,
//! facility `user`, severity `notice`, tag `cairn` (Go `log/syslog` formats, as rp).

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// `<PRI>` for facility user (1) and severity notice (5).
const PRI: u8 = 13;
/// Program tag of our messages.
const TAG: &str = "cairn";
/// Default syslog port.
const DEFAULT_PORT: u16 = 514;

enum Conn {
    Local(UnixDatagram),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// A connection to a syslog target.
pub(crate) struct SyslogWriter {
    conn: Conn,
    hostname: String,
}

impl SyslogWriter {
    /// Connects to the target named by a log target string.
    pub(crate) fn connect(spec: &str) -> std::io::Result<SyslogWriter> {
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        let (scheme, rest) = match spec.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => match spec.split_once(':') {
                Some((s, r)) => (s.to_ascii_lowercase(), r),
                None => return Err(bad(format!("not a syslog target: {spec}"))),
            },
        };
        let host_port = rest.trim_end_matches('/');
        let conn = match scheme.as_str() {
            "syslog" if host_port.is_empty() => Conn::Local(local_socket()?),
            "syslog" | "udp" => Conn::Udp(udp(host_port)?),
            "syslog-tcp" | "tcp" => Conn::Tcp(tcp(host_port)?),
            other => {
                return Err(bad(format!(
                    "unsupported log target scheme {other:?} (use syslog:, syslog://, \
                     syslog-tcp://, udp:// or tcp://)"
                )));
            }
        };
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        Ok(SyslogWriter { conn, hostname })
    }

    /// Sends each non-empty line of `data` as one message.
    pub(crate) fn write_lines(&mut self, data: &[u8]) -> std::io::Result<()> {
        for line in data.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            self.send(&String::from_utf8_lossy(line))?;
        }
        Ok(())
    }

    fn send(&mut self, msg: &str) -> std::io::Result<()> {
        let pid = std::process::id();
        match &mut self.conn {
            Conn::Local(s) => {
                let ts = chrono::Local::now().format("%b %e %H:%M:%S");
                s.send(format!("<{PRI}>{ts} {TAG}[{pid}]: {msg}").as_bytes())
                    .map(|_| ())
            }
            Conn::Udp(s) => {
                let m = remote_message(&self.hostname, pid, msg);
                s.send(m.as_bytes()).map(|_| ())
            }
            Conn::Tcp(s) => {
                let m = remote_message(&self.hostname, pid, msg);
                s.write_all(m.as_bytes())
            }
        }
    }
}

fn remote_message(hostname: &str, pid: u32, msg: &str) -> String {
    let ts = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    format!("<{PRI}>{ts} {hostname} {TAG}[{pid}]: {msg}\n")
}

fn with_port(host_port: &str) -> String {
    if host_port.is_empty() {
        return format!("localhost:{DEFAULT_PORT}");
    }
    // `[v6]:port`, `host:port`, `v4:port` have a port; a bare IPv6 address has several colons.
    let has_port = if host_port.starts_with('[') {
        host_port.contains("]:")
    } else {
        host_port.matches(':').count() == 1
    };
    if has_port {
        host_port.to_string()
    } else if host_port.contains(':') && !host_port.starts_with('[') {
        format!("[{host_port}]:{DEFAULT_PORT}")
    } else {
        format!("{host_port}:{DEFAULT_PORT}")
    }
}

fn udp(host_port: &str) -> std::io::Result<UdpSocket> {
    let target = with_port(host_port);
    let addr = target.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{target}: no address"),
        )
    })?;
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = UdpSocket::bind(bind)?;
    s.connect(addr)?;
    Ok(s)
}

fn tcp(host_port: &str) -> std::io::Result<TcpStream> {
    let target = with_port(host_port);
    let mut last = None;
    for addr in target.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => {
                s.set_write_timeout(Some(Duration::from_secs(10)))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{target}: no address"),
        )
    }))
}

fn local_socket() -> std::io::Result<UnixDatagram> {
    let mut last = None;
    for path in ["/dev/log", "/var/run/syslog", "/var/run/log"] {
        let s = UnixDatagram::unbound()?;
        match s.connect(path) {
            Ok(()) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no local syslog socket")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(with_port("h"), "h:514");
        assert_eq!(with_port("h:1514"), "h:1514");
        assert_eq!(with_port("[::1]:99"), "[::1]:99");
        assert_eq!(with_port("::1"), "[::1]:514");
        assert_eq!(with_port(""), "localhost:514");
    }

    #[test]
    fn udp_messages() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let mut w = SyslogWriter::connect(&format!("udp://127.0.0.1:{port}")).unwrap();
        w.write_lines(b"first line\r\n\nsecond\n").unwrap();
        let mut buf = [0u8; 2048];
        let n = server.recv(&mut buf).unwrap();
        let m1 = String::from_utf8_lossy(&buf[..n]).into_owned();
        let n = server.recv(&mut buf).unwrap();
        let m2 = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(m1.starts_with("<13>"), "{m1}");
        assert!(
            m1.contains(&format!("cairn[{}]: first line\n", std::process::id())),
            "{m1}"
        );
        assert!(m2.ends_with(": second\n"), "{m2}");
    }

    #[test]
    fn bad_scheme() {
        assert!(SyslogWriter::connect("http://x").is_err());
        assert!(SyslogWriter::connect("nothing").is_err());
    }
}
