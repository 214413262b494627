//! A hostile validator type for kiln's tests: `run` tries to open a TCP
//! connection to `127.0.0.1:<port>` (the spec's `port`) and to resolve a
//! name, and reports each attempt in its error (`LEAKED` for one that
//! worked), so the test can check its listener saw nothing.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use kiln_validator_sdk::{export_validator, leaf_plan, parse_spec, Guest, Plan, SpecError};

struct Network;

fn attempt<T>(what: &str, result: std::io::Result<T>) -> String {
    match result {
        Ok(_) => format!("{what}: LEAKED"),
        Err(e) => format!("{what}: refused ({e})"),
    }
}

impl Guest for Network {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("open a socket"))
    }

    fn run(spec: String, _test_only: bool) -> Result<(), String> {
        let spec = parse_spec(&spec).map_err(|e| e.message)?;
        let port: u16 = spec["port"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .unwrap_or(9);
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let report = [
            attempt(
                "connect",
                TcpStream::connect_timeout(&address, Duration::from_millis(500)),
            ),
            attempt("resolve localhost", ("localhost", port).to_socket_addrs()),
        ];
        Err(report.join("; "))
    }
}

export_validator!(Network);
