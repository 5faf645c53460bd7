//! Answers that carry tasks (one task, or the list), written in pieces so a task's result is
//! lent from the shared task, never copied per request.
//!
//! A result may be 1 MiB and the list may carry 256 MiB of them. Each task is written as the
//! JSON before its result, the result's own text (lent from the `Arc<Task>` the tracker shares),
//! and the JSON after it; only the small parts are built, one at a time, and only when the
//! socket takes them. A HEAD answer measures the same pieces and writes none.

use std::io;
use std::sync::{Arc, Mutex};

use crate::http::response::{Piece, Pieces};
use crate::task::Task;

/// One task (`{...}`) or the list (`{"tasks":[...]}`) as a body of pieces.
#[derive(Debug)]
pub struct TaskBody {
    tasks: Vec<Arc<Task>>,
    list: bool,
    /// Appended inside the task's object (`,"subscribeToken":"..."`), for one task only.
    extra: String,
    len: usize,
    /// The last task cut around its result, with its index: each task is serialized once per
    /// pass over the pieces, not once per piece.
    cut: Mutex<Option<(usize, Split)>>,
}

/// Pieces of each task: before its result, the result, after it.
const PER_TASK: usize = 3;

impl TaskBody {
    /// One task's JSON, with `extra` (a JSON member with its leading comma) added at its end.
    pub fn one(task: Arc<Task>, extra: String) -> TaskBody {
        TaskBody::new(vec![task], false, extra)
    }

    /// `{"tasks":[...]}`.
    pub fn list(tasks: Vec<Arc<Task>>) -> TaskBody {
        TaskBody::new(tasks, true, String::new())
    }

    fn new(tasks: Vec<Arc<Task>>, list: bool, extra: String) -> TaskBody {
        let mut body = TaskBody { tasks, list, extra, len: 0, cut: Mutex::new(None) };
        let mut scratch = Vec::new();
        let mut index = 0;
        let mut len = 0;
        while let Some(piece) = body.piece(index, &mut scratch) {
            len += match piece {
                Piece::Built => scratch.len(),
                Piece::Lent(bytes) => bytes.len(),
            };
            scratch.clear();
            index += 1;
        }
        body.len = len;
        body
    }
}

impl Pieces for TaskBody {
    fn len(&self) -> usize {
        self.len
    }

    fn piece<'a>(&'a self, index: usize, out: &mut Vec<u8>) -> Option<Piece<'a>> {
        // The list has its opening and closing as pieces of their own around the tasks'.
        let (index, opening) = if self.list { (index.checked_sub(1), index == 0) } else { (Some(index), false) };
        if opening {
            out.extend_from_slice(b"{\"tasks\":[");
            return Some(Piece::Built);
        }
        let index = index?;
        let Some(task) = self.tasks.get(index / PER_TASK) else {
            if self.list && index == self.tasks.len() * PER_TASK {
                out.extend_from_slice(b"]}");
                return Some(Piece::Built);
            }
            return None;
        };
        let mut cut = self.cut.lock().unwrap_or_else(|e| e.into_inner());
        let task_index = index / PER_TASK;
        if cut.as_ref().is_none_or(|(cut_index, _)| *cut_index != task_index) {
            *cut = Some((task_index, Split::of(task)));
        }
        let parts = &cut.as_ref().expect("set above").1;
        match index % PER_TASK {
            0 => {
                if self.list && index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&parts.before);
                Some(Piece::Built)
            }
            1 => Some(Piece::Lent(match (parts.lends_result, &task.result) {
                (true, Some(result)) => result.as_str().as_bytes(),
                _ => &[],
            })),
            _ => {
                // `after` ends with the object's closing brace; `extra` goes in before it.
                out.extend_from_slice(&parts.after[..parts.after.len() - 1]);
                out.extend_from_slice(self.extra.as_bytes());
                out.push(b'}');
                Some(Piece::Built)
            }
        }
    }
}

/// A task's JSON cut around its result's text; `after` always ends with the closing brace.
#[derive(Debug)]
struct Split {
    before: Vec<u8>,
    /// The result's text goes between `before` and `after`, lent from the task: serde_json wrote
    /// it in one piece (it does: a raw value is written with one `write_all`). Otherwise it is
    /// in `before` and the answer is merely copied.
    lends_result: bool,
    after: Vec<u8>,
}

impl Split {
    fn of(task: &Task) -> Split {
        let result = task.result.as_ref().map(|r| r.as_str());
        let mut writer = SplitWriter { result, before: Vec::with_capacity(256), after: Vec::new(), seen: false };
        serde_json::to_writer(&mut writer, task).expect("a task always serializes");
        let SplitWriter { mut before, after, seen, .. } = writer;
        if seen {
            Split { before, lends_result: true, after }
        } else {
            let close = before.pop().expect("an object ends with a brace");
            Split { before, lends_result: false, after: vec![close] }
        }
    }
}

/// Collects what serde_json writes, recognizing the result's own text by its address.
struct SplitWriter<'a> {
    result: Option<&'a str>,
    before: Vec<u8>,
    after: Vec<u8>,
    seen: bool,
}

impl io::Write for SplitWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let is_result = self.result.is_some_and(|r| r.len() == buf.len() && std::ptr::eq(r.as_ptr(), buf.as_ptr()));
        if is_result && !self.seen {
            self.seen = true;
        } else if self.seen {
            self.after.extend_from_slice(buf);
        } else {
            self.before.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::JsonText;

    fn task(id: &str, result: Option<&str>) -> Arc<Task> {
        let mut task = Task::new(id.into(), "s".into(), String::new(), 1);
        task.result = result.map(|r| JsonText::parse(r).unwrap());
        Arc::new(task)
    }

    /// The whole body, and how many of its bytes were lent rather than built.
    fn assemble(body: &TaskBody) -> (String, usize) {
        let (mut all, mut lent, mut scratch) = (Vec::new(), 0, Vec::new());
        let mut index = 0;
        while let Some(piece) = body.piece(index, &mut scratch) {
            match piece {
                Piece::Built => all.append(&mut scratch),
                Piece::Lent(bytes) => {
                    all.extend_from_slice(bytes);
                    lent += bytes.len();
                }
            }
            index += 1;
        }
        (String::from_utf8(all).unwrap(), lent)
    }

    #[test]
    fn pieces_make_the_same_json_as_a_whole_serialization_and_lend_results() {
        let big = format!("[{}]", vec!["1"; 1000].join(","));
        let tasks = vec![task("a", Some(&big)), task("b", None), task("c", Some("{\"k\":\"v\"}"))];
        let list = TaskBody::list(tasks.clone());
        let (text, lent) = assemble(&list);
        let whole: Vec<String> = tasks.iter().map(|t| t.to_json()).collect();
        assert_eq!(text, format!("{{\"tasks\":[{}]}}", whole.join(",")));
        assert_eq!(list.len(), text.len(), "measured as written");
        assert_eq!(lent, big.len() + 9, "the results are lent, not built");
        let one = TaskBody::one(Arc::clone(&tasks[0]), ",\"subscribeToken\":\"t\"".into());
        let (text, _) = assemble(&one);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!((json["taskId"].as_str(), json["subscribeToken"].as_str()), (Some("a"), Some("t")));
        assert_eq!(one.len(), text.len());
        let plain = TaskBody::one(Arc::clone(&tasks[1]), ",\"subscribeToken\":\"t\"".into());
        let (text, lent) = assemble(&plain);
        assert_eq!(text, tasks[1].to_json().replace("}", ",\"subscribeToken\":\"t\"}"));
        assert_eq!((plain.len(), lent), (text.len(), 0));
        let empty = TaskBody::list(Vec::new());
        assert_eq!(assemble(&empty).0, "{\"tasks\":[]}");
    }
}
