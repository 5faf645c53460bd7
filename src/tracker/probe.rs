//! A probe on the tracker's lock, for tests: how often a thread takes it, and something to run
//! just before one of its takes.
//!
//! Two promises of the tracker are about its lock rather than about answers: admitting a list of
//! tasks takes it once, whatever the length of the list (a refused list must cost about what a
//! refused task costs), and a viewer's token is checked against the same task whose topic it is
//! given (nothing may change the task between two takes). Tests count the takes, and run a
//! delete and a re-create between two of them. Outside tests the probe is an empty function.

/// Called before every take of the tracker's lock.
#[inline(always)]
pub(super) fn taking() {
    #[cfg(test)]
    counting::taking();
}

#[cfg(test)]
pub(crate) mod counting {
    use std::cell::{Cell, RefCell};

    /// Runs before a take of this thread, and the number of that take.
    type Before = (usize, Box<dyn FnOnce()>);

    thread_local! {
        /// Takes of the lock by this thread so far.
        static TAKEN: Cell<usize> = const { Cell::new(0) };
        static BEFORE: RefCell<Option<Before>> = const { RefCell::new(None) };
    }

    pub(super) fn taking() {
        let n = TAKEN.with(|taken| {
            taken.set(taken.get() + 1);
            taken.get()
        });
        // Taken out before it runs: the takes it makes itself run nothing.
        let due = BEFORE.with_borrow_mut(|before| match before {
            Some((at, _)) if *at == n => before.take(),
            _ => None,
        });
        if let Some((_, run)) = due {
            run();
        }
    }

    /// Takes of the tracker's lock by this thread so far.
    pub(crate) fn taken() -> usize {
        TAKEN.with(Cell::get)
    }

    /// Runs `f` on this thread just before its `n`th take of the lock from now (1: the next).
    pub(crate) fn before_take(n: usize, f: impl FnOnce() + 'static) {
        let at = taken().saturating_add(n);
        BEFORE.with_borrow_mut(|before| *before = Some((at, Box::new(f))));
    }

    /// Drops a `before_take` that did not run.
    pub(crate) fn clear() {
        BEFORE.with_borrow_mut(|before| *before = None);
    }
}
