//! Tests of the firmware against real telegrams, hand-worked control responses and the
//! readings log's contract. Run on the host with std.
mod controller;
mod p1;
mod readings;

/// A tiny deterministic generator for the property tests (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
