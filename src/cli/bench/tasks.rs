//! The tasks of a run and the stream its viewers open.
//!
//! By default one task on its own route (`/progress/{id}`): exactly what the tool has always
//! measured, which `benches/peers/compare.sh` compares with nchan. With `--tasks-per-stream K`,
//! K tasks that every viewer follows over one multi-task stream (`?tasks=`), the updates taking
//! the tasks in turn: each update still reaches every viewer, so CPU per delivered event compares
//! across K, and memory per stream shows what following K tasks costs an idle viewer. K = 1 is
//! the multi-task route with one task, the baseline of that comparison.

use sse_progress::client::Client;

use super::{Peer, Plan};

/// The most tasks one multi-task stream may list (API.md, "Many tasks on one stream").
pub const MAX_PER_STREAM: usize = 100;

/// The run's task ids and how they are followed.
#[derive(Clone, Debug)]
pub struct Tasks {
    ids: Vec<String>,
    /// Followed over one `?tasks=` stream (else the one task on its own route).
    multi: bool,
}

impl Tasks {
    /// The tasks of `plan`: its `task` alone, or `task-0` .. `task-{K-1}`.
    pub fn of(plan: &Plan) -> Tasks {
        match plan.tasks_per_stream {
            None => Tasks { ids: vec![plan.task.clone()], multi: false },
            Some(k) => Tasks { ids: (0..k).map(|i| format!("{}-{i}", plan.task)).collect(), multi: true },
        }
    }

    /// The task that update `index` goes to.
    pub fn of_update(&self, index: usize) -> &str {
        &self.ids[index % self.ids.len()]
    }

    /// Creates every task afresh (one left by an earlier run is deleted first).
    pub fn create(&self, publisher: &mut Client) -> Result<(), String> {
        for id in &self.ids {
            let _ = publisher.request("DELETE", &format!("/api/brand-monitor/tasks/{id}"), None);
            let body = serde_json::json!({ "taskId": id, "stage": "bench" }).to_string();
            let reply =
                publisher.request("POST", "/api/brand-monitor/tasks", Some(&body)).map_err(|e| e.to_string())?;
            if reply.status != 201 {
                return Err(format!("creating task {id} answered {}: {}", reply.status, reply.text()));
            }
        }
        Ok(())
    }

    /// The path a viewer subscribes to (after the URL's base).
    pub fn subscribe_path(&self, peer: Peer) -> String {
        match (peer, self.multi) {
            (Peer::SseProgress, false) => format!("/api/brand-monitor/progress/{}", self.ids[0]),
            (Peer::SseProgress, true) => format!("/api/brand-monitor/progress?tasks={}", self.ids.join(",")),
            (Peer::Nchan, _) => format!("/sub/{}", self.ids[0]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_take_the_tasks_in_turn_on_one_stream() {
        let one = Tasks { ids: vec!["t".into()], multi: false };
        assert_eq!((one.of_update(0), one.of_update(7)), ("t", "t"));
        assert_eq!(one.subscribe_path(Peer::SseProgress), "/api/brand-monitor/progress/t");
        let three = Tasks { ids: vec!["t-0".into(), "t-1".into(), "t-2".into()], multi: true };
        assert_eq!([three.of_update(0), three.of_update(2), three.of_update(4)], ["t-0", "t-2", "t-1"]);
        assert_eq!(three.subscribe_path(Peer::SseProgress), "/api/brand-monitor/progress?tasks=t-0,t-1,t-2");
    }
}
