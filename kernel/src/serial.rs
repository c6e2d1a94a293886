//! The COM1 serial console (16550 UART, polled): the kernel's only output.

use core::fmt::{self, Write};

use crate::sync::Mutex;

use crate::arch::port::{inb, outb};

/// I/O base of COM1.
const COM1: u16 = 0x3F8;
/// Register offsets from the base.
const DATA: u16 = 0;
const INTERRUPT_ENABLE: u16 = 1;
const FIFO_CONTROL: u16 = 2;
const LINE_CONTROL: u16 = 3;
const MODEM_CONTROL: u16 = 4;
const LINE_STATUS: u16 = 5;
/// Line control: divisor latch access.
const LCR_DLAB: u8 = 1 << 7;
/// Line control: 8 data bits, no parity, one stop bit.
const LCR_8N1: u8 = 0b11;
/// FIFO control: enable and clear both FIFOs, 14-byte threshold.
const FCR_ENABLE_CLEAR_14: u8 = 0xC7;
/// Modem control: DTR, RTS, OUT2.
const MCR_DTR_RTS_OUT2: u8 = 0x0B;
/// Line status: transmit holding register empty.
const LSR_THR_EMPTY: u8 = 1 << 5;
/// Divisor for 115200 baud.
const DIVISOR_115200: u8 = 1;

/// The UART. Only reachable through [`SERIAL`] (or, after a crash,
/// [`emergency_writer`]).
pub struct Serial(());

impl Serial {
    fn write_byte(&mut self, byte: u8) {
        // SAFETY: COM1 belongs to this console; polling the line status and
        // writing the data register only sends a byte.
        unsafe {
            while inb(COM1 + LINE_STATUS) & LSR_THR_EMPTY == 0 {}
            outb(COM1 + DATA, byte);
        }
    }
}

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}

/// The console, locked per message.
pub static SERIAL: Mutex<Serial> = Mutex::new(Serial(()));

/// Programs COM1 for 115200 8N1.
pub fn init() {
    let _guard = SERIAL.lock();
    // SAFETY: the UART is programmed once, with its lock held.
    unsafe {
        outb(COM1 + INTERRUPT_ENABLE, 0);
        outb(COM1 + LINE_CONTROL, LCR_DLAB);
        outb(COM1 + DATA, DIVISOR_115200);
        outb(COM1 + INTERRUPT_ENABLE, 0);
        outb(COM1 + LINE_CONTROL, LCR_8N1);
        outb(COM1 + FIFO_CONTROL, FCR_ENABLE_CLEAR_14);
        outb(COM1 + MODEM_CONTROL, MCR_DTR_RTS_OUT2);
    }
}

/// A writer that bypasses the lock, for panics and oopses (the lock may be
/// held by the code that crashed; the kernel is single-CPU and about to stop).
pub fn emergency_writer() -> Serial {
    Serial(())
}

/// Writes formatted text to the console.
pub fn print(args: fmt::Arguments<'_>) {
    let _ = SERIAL.lock().write_fmt(args);
}

#[allow(dead_code)] // used by the write system call
/// Writes raw bytes (e.g. from a user program), replacing non-text bytes.
pub fn write_bytes(bytes: &[u8]) {
    let mut serial = SERIAL.lock();
    for &b in bytes {
        let b = if b == b'\n' || b == b'\t' || (0x20..0x7F).contains(&b) {
            b
        } else {
            b'?'
        };
        if b == b'\n' {
            serial.write_byte(b'\r');
        }
        serial.write_byte(b);
    }
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::print(format_args!($($arg)*)) };
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::print(format_args!("{}\n", format_args!($($arg)*))) };
}
