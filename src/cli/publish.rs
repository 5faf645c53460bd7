//! `sse-progress publish URL ...`: the producer API from a shell, one call per command.

use std::time::Duration;

use sse_progress::client::{Client, Url};

use super::flags::{Flag, parse_flags};

/// `publish --help`.
pub const HELP: &str = "\
Usage: sse-progress publish URL <call> [args] [--token TOKEN]

Calls (URL is the server, e.g. http://127.0.0.1:8080):
  create [--id ID] [--stage TEXT] [--message TEXT]      create a task (no --id: the server makes one)
  update ID [--progress N] [--stage TEXT] [--message TEXT] [--status pending|running] [--reset]
  complete ID [--result JSON]                           finish with a result (any JSON)
  fail ID --error TEXT                                  finish with an error
  get ID | list | delete ID

The answer's JSON is printed on stdout; an error answer exits 1, a usage error 2.
--token TOKEN is sent as `Authorization: Bearer TOKEN`.
Reads no environment variables: every setting is a flag of this command line.
";

/// Command-line only: a variable exported for one call would silently change every later one.
const FLAGS: &[Flag] = &[
    Flag::new("token", Some("TOKEN"), "the server's publish token"),
    Flag::new("publish-token", Some("TOKEN"), "same as --token"),
    Flag::new("id", Some("ID"), "task id for create"),
    Flag::new("stage", Some("TEXT"), "stage label"),
    Flag::new("message", Some("TEXT"), "message"),
    Flag::new("progress", Some("N"), "0 to 100"),
    Flag::new("status", Some("STATUS"), "pending or running"),
    Flag::new("reset", None, "allow progress to move back"),
    Flag::new("result", Some("JSON"), "result of complete"),
    Flag::new("error", Some("TEXT"), "error of fail"),
];

/// Runs `publish`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    match call(args) {
        Ok((status, body)) => {
            if !body.is_empty() {
                println!("{body}");
            }
            if status >= 400 { 1 } else { 0 }
        }
        Err(message) => {
            eprintln!("sse-progress publish: {message}");
            2
        }
    }
}

fn call(args: &[String]) -> Result<(u16, String), String> {
    let (flags, positional) = parse_flags(args, &[FLAGS])?;
    let [url, call, rest @ ..] = positional.as_slice() else {
        return Err(format!("expected URL and a call\n\n{HELP}"));
    };
    let url = Url::parse(url).map_err(|e| e.to_string())?;
    let token = flags.get("token").or_else(|| flags.get("publish-token")).cloned();
    let id = || rest.first().cloned().ok_or_else(|| format!("`{call}` needs a task id"));
    let text = |name: &str| flags.get(name).map(|v| serde_json::Value::String(v.clone()));
    let mut body = serde_json::Map::new();
    let (method, path) = match call.as_str() {
        "create" => {
            for (field, flag) in [("taskId", "id"), ("stage", "stage"), ("message", "message")] {
                if let Some(v) = text(flag) {
                    body.insert(field.into(), v);
                }
            }
            ("POST", "/api/brand-monitor/tasks".to_owned())
        }
        "update" => {
            for name in ["stage", "message", "status"] {
                if let Some(v) = text(name) {
                    body.insert(name.into(), v);
                }
            }
            if let Some(p) = flags.get("progress") {
                let p: f64 = p.parse().map_err(|_| format!("--progress must be a number, not {p:?}"))?;
                body.insert("progress".into(), p.into());
            }
            if flags.contains_key("reset") {
                body.insert("reset".into(), true.into());
            }
            ("PATCH", format!("/api/brand-monitor/tasks/{}", id()?))
        }
        "complete" => {
            if let Some(r) = flags.get("result") {
                let r: serde_json::Value = serde_json::from_str(r).map_err(|e| format!("--result is not JSON: {e}"))?;
                body.insert("result".into(), r);
            }
            ("POST", format!("/api/brand-monitor/tasks/{}/complete", id()?))
        }
        "fail" => {
            body.insert("error".into(), text("error").ok_or("`fail` needs --error TEXT")?);
            ("POST", format!("/api/brand-monitor/tasks/{}/fail", id()?))
        }
        "get" => ("GET", format!("/api/brand-monitor/tasks/{}", id()?)),
        "delete" => ("DELETE", format!("/api/brand-monitor/tasks/{}", id()?)),
        "list" => ("GET", "/api/brand-monitor/tasks".to_owned()),
        other => return Err(format!("unknown call {other:?}\n\n{HELP}")),
    };
    let body = (method != "GET" && method != "DELETE").then(|| serde_json::Value::Object(body).to_string());
    let mut client = Client::connect(&url, token, Duration::from_secs(10))
        .map_err(|e| format!("cannot connect to {}: {e}", url.authority))?;
    let reply = client.request(method, &path, body.as_deref()).map_err(|e| e.to_string())?;
    Ok((reply.status, reply.text()))
}
