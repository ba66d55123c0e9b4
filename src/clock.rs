//! The clock is an input: commands read "now" from here, tests and replays fix it.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
    /// The system clock moved by a fixed amount: time passes, from another starting point
    /// (`vaten schedule --now`).
    Offset(chrono::Duration),
}

impl Clock {
    /// A clock that keeps running from where this one stands now.
    pub fn running(self) -> Clock {
        match self {
            Clock::Fixed(t) => Clock::Offset(t - Utc::now()),
            c => c,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
            Clock::Offset(d) => Utc::now() + *d,
        }
    }
}
