//! How `watch` shows its tasks: on a terminal, a block of bars (one line per task) redrawn in
//! place; otherwise one plain line per change, for logs and pipes.
//!
//! In place means moving the cursor up to the task's line and back, so a line must never wrap:
//! lines on a terminal are cut to [`WIDTH`] characters (the width is not asked of the terminal,
//! which would need an `ioctl` this crate does not enable, nor read from `COLUMNS`: `watch` reads
//! no environment variable). Text from the server (stage, error) has its control characters
//! replaced, so a task cannot move the cursor, retitle the window or hide a line.

use std::io::{IsTerminal, Write};

use super::board::{Board, End, Snapshot, Tracked};

/// The widest line drawn on a terminal: narrower than the usual 80 columns, so none wraps.
const WIDTH: usize = 79;

/// The widest task id shown in front of a bar; longer ones are cut.
const ID_WIDTH: usize = 24;

/// Where and how lines go.
#[derive(Debug)]
pub struct Display {
    /// Bars redrawn in place (stdout is a terminal).
    tty: bool,
    /// Notices on stderr land on the same screen as the bars.
    notices_on_screen: bool,
    /// Lines prefixed with the task id (more than one task).
    labels: bool,
    /// The width of the id column.
    id_width: usize,
    /// Lines of the block now on screen, 0 before the first draw (or after a notice).
    drawn: usize,
}

impl Display {
    /// A display for `board`, drawing bars if stdout is a terminal.
    pub fn new(board: &Board) -> Display {
        let tty = std::io::stdout().is_terminal();
        Display::with(board, tty, tty && std::io::stderr().is_terminal())
    }

    fn with(board: &Board, tty: bool, notices_on_screen: bool) -> Display {
        let id_width = board.tasks.iter().map(|t| t.id.chars().count()).max().unwrap_or(0).min(ID_WIDTH);
        Display { tty, notices_on_screen, labels: board.tasks.len() > 1, id_width, drawn: 0 }
    }

    /// Shows that the task at `index` changed.
    pub fn changed(&mut self, board: &Board, index: usize) {
        let text = self.render(board, index);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// What [`Display::changed`] writes.
    fn render(&mut self, board: &Board, index: usize) -> String {
        if !self.tty {
            return format!("{}\n", self.line(&board.tasks[index]));
        }
        if self.drawn != board.tasks.len() {
            // The whole block, below whatever is on screen.
            self.drawn = board.tasks.len();
            return board.tasks.iter().map(|t| format!("\x1b[2K{}\n", self.line(t))).collect();
        }
        // Up to the task's line (to its start), rewrite it, and back down below the block.
        let up = self.drawn - index;
        format!("\x1b[{up}F\x1b[2K{}\x1b[{up}E", self.line(&board.tasks[index]))
    }

    /// A message on stderr (reconnecting, giving up, a stream-level error).
    pub fn notice(&mut self, text: &str) {
        eprintln!("sse-progress watch: {}", clean(text));
        if self.notices_on_screen {
            // The notice pushed the block up: the next change draws a whole new one below it.
            self.drawn = 0;
        }
    }

    /// The line of one task: `[id] [bar] percent status detail ETA`.
    fn line(&self, task: &Tracked) -> String {
        let bar_width = if self.labels { 20 } else { 30 };
        let none = Snapshot::default();
        let snapshot = task.snapshot.as_ref().unwrap_or(&none);
        let filled = ((snapshot.progress / 100.0 * bar_width as f64).round() as usize).min(bar_width);
        let bar = format!("[{}{}]", "#".repeat(filled), "-".repeat(bar_width - filled));
        let (status, detail) = match &task.end {
            Some(End::Dropped(why)) => ("error", why.clone()),
            Some(End::Failed(error)) => ("failed", error.clone()),
            _ if task.snapshot.is_none() => ("waiting", String::new()),
            _ => (snapshot.status.as_str(), snapshot.stage.clone()),
        };
        let eta = match (&task.end, snapshot.eta_secs) {
            (None, Some(secs)) => format!(" ~{secs:.0}s left"),
            _ => String::new(),
        };
        let mut line = String::new();
        if self.labels {
            let id: String = task.id.chars().take(self.id_width).collect();
            line.push_str(&format!("{id:<width$} ", width = self.id_width));
        }
        line.push_str(&format!("{bar} {:5.1}% {status:<9} {}{eta}", snapshot.progress, clean(&detail)));
        if self.tty {
            line = line.chars().take(WIDTH).collect();
        }
        line.trim_end().to_owned()
    }
}

/// `text` with every control character replaced by a space.
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn board() -> Board {
        Board::new(vec![("build-a".into(), String::new()), ("b".into(), String::new())])
    }

    #[test]
    fn plain_lines_name_the_task_and_carry_no_escape() {
        let mut board = board();
        let mut display = Display::with(&board, false, false);
        board.progress(0, &json!({"status": "running", "progress": 50, "stage": "Half\x1b]0;pwned\x07", "estimatedTimeRemaining": 12}));
        let text = display.render(&board, 0);
        assert_eq!(text, "build-a [##########----------]  50.0% running   Half ]0;pwned  ~12s left\n");
        board.drop_task(1, "task_deleted", "The task was deleted.");
        assert_eq!(
            display.render(&board, 1),
            "b       [--------------------]   0.0% error     task_deleted: The task was deleted.\n"
        );
    }

    #[test]
    fn one_task_keeps_the_old_line() {
        let mut board = Board::new(vec![("w".into(), String::new())]);
        let mut display = Display::with(&board, false, false);
        board.progress(
            0,
            &json!({"status": "completed", "progress": 100, "stage": "Done", "estimatedTimeRemaining": 0}),
        );
        assert_eq!(display.render(&board, 0), format!("[{}] 100.0% completed Done\n", "#".repeat(30)));
    }

    #[test]
    fn a_terminal_gets_a_block_then_lines_rewritten_in_place() {
        let mut board = board();
        let mut display = Display::with(&board, true, true);
        board.progress(1, &json!({"status": "running", "progress": 10, "stage": "x".repeat(200)}));
        let first = display.render(&board, 1);
        assert_eq!(first.matches('\n').count(), 2, "the whole block: {first:?}");
        assert!(first.starts_with("\x1b[2Kbuild-a [--------------------]   0.0% waiting\n"), "{first:?}");
        assert!(first.lines().all(|l| l.trim_start_matches("\x1b[2K").chars().count() <= WIDTH), "{first:?}");
        board.progress(0, &json!({"status": "running", "progress": 100}));
        let again = display.render(&board, 0);
        assert!(again.starts_with("\x1b[2F\x1b[2Kbuild-a [####################] 100.0% running"), "{again:?}");
        assert!(again.ends_with("\x1b[2E") && !again.contains('\n'), "{again:?}");
        display.notice("reconnecting");
        assert_eq!(display.render(&board, 0).matches('\n').count(), 2, "after a notice, a new block");
    }
}
