//! `GET /`: a page that lists the tasks and follows each one live, for the demo and for a quick
//! look at a running server. Plain HTML and a few lines of script; no build step.

use crate::http::response::{Body, Response};

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sse-progress</title>
<style>
body{font:15px system-ui,sans-serif;margin:2rem;max-width:56rem;color:#222}
.task{border:1px solid #ddd;border-radius:6px;padding:.6rem .8rem;margin:.5rem 0}
.bar{height:8px;background:#eee;border-radius:4px;overflow:hidden;margin:.4rem 0}
.fill{height:100%;background:#3b82f6;transition:width .3s}
.completed .fill{background:#16a34a}.failed .fill{background:#dc2626}
.meta{color:#666;font-size:13px}code{font-size:13px}
</style></head><body>
<h1>sse-progress</h1>
<p class="meta">Tasks of this server, live over <code>EventSource</code>. Watch one in a terminal with
<code>curl -N <span id="origin"></span>/api/brand-monitor/progress/TASK_ID</code>.</p>
<div id="tasks"></div>
<script>
document.getElementById('origin').textContent = location.origin;
const boxes = new Map();
function show(t) {
  let box = boxes.get(t.taskId);
  if (!box) {
    box = document.createElement('div');
    box.innerHTML = '<b class="id"></b> <span class="status"></span><div class="bar"><div class="fill"></div></div><div class="meta"></div>';
    box.querySelector('.id').textContent = t.taskId;
    document.getElementById('tasks').prepend(box);
    boxes.set(t.taskId, box);
  }
  box.className = 'task ' + t.status;
  box.querySelector('.status').textContent = t.status + ' ' + t.progress.toFixed(0) + '%';
  box.querySelector('.fill').style.width = t.progress + '%';
  const eta = t.estimatedTimeRemaining == null ? '' : ' (about ' + Math.round(t.estimatedTimeRemaining) + ' s left)';
  box.querySelector('.meta').textContent = (t.error ? 'Error: ' + t.error : t.stage + ' - ' + t.message) + eta;
}
const following = new Set();
function follow(id) {
  if (following.has(id)) return;
  following.add(id);
  const es = new EventSource('/api/brand-monitor/progress/' + encodeURIComponent(id));
  es.addEventListener('progress', e => { const t = JSON.parse(e.data); show(t);
    if (t.status === 'completed' || t.status === 'failed') es.close(); });
}
async function refresh() {
  try {
    const list = await (await fetch('/api/brand-monitor/tasks')).json();
    for (const t of list.tasks.slice(0, 30).reverse()) { if (!boxes.has(t.taskId)) { show(t); } follow(t.taskId); }
  } catch (e) {}
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
"#;

/// The page.
pub fn page() -> Response {
    Response {
        status: 200,
        headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
        body: Body::Bytes(PAGE.as_bytes().to_vec()),
    }
}
