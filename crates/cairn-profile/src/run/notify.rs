//! systemd's readiness protocol (`Type=notify` units): `READY=1` before the run, `STOPPING=1`
//! after, sent to `$NOTIFY_SOCKET` when it is set.

use std::os::unix::net::UnixDatagram;

/// Send `state` (e.g. `READY=1`) to systemd when running under it; silently nothing otherwise.
pub fn notify_systemd(state: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    if let Some(abstract_name) = path.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            if let Ok(addr) =
                std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            {
                let _ = sock.send_to_addr(state.as_bytes(), &addr);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = abstract_name;
        return;
    }
    let _ = sock.send_to(state.as_bytes(), &path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_the_state_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        // SAFETY: the variable is only read by this test's own call below; tests that read
        // NOTIFY_SOCKET do not exist elsewhere in this crate.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        notify_systemd("READY=1");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
