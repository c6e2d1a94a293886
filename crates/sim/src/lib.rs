//! Simulated i386 machine.
