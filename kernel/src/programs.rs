//! The user programs built into the kernel image by `build.rs` from
//! `user/*.c`, and a small ELF loader for them.

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// Looks a program up by name.
pub fn find(name: &str) -> Option<&'static [u8]> {
    PROGRAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, elf)| *elf)
}

/// `PT_LOAD` program-header type.
const PT_LOAD: u32 = 1;
/// Segment flag: executable.
pub const PF_X: u32 = 1;
/// Segment flag: writable.
pub const PF_W: u32 = 2;
/// `EM_386` machine.
const EM_386: u16 = 3;
/// `ET_EXEC` file type.
const ET_EXEC: u16 = 2;

/// One loadable segment of an ELF file.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    /// Virtual address of the first byte.
    pub vaddr: u32,
    /// Bytes in memory (the tail past `file_size` is zero).
    pub mem_size: u32,
    /// Offset of the segment's bytes in the file.
    pub offset: u32,
    /// Bytes in the file.
    pub file_size: u32,
    /// `PF_*` flags.
    pub flags: u32,
}

/// A parsed ELF executable.
pub struct Elf<'a> {
    data: &'a [u8],
    /// Entry point.
    pub entry: u32,
    phoff: u32,
    phentsize: u16,
    phnum: u16,
}

fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(off..off + 4)?.try_into().ok()?))
}

impl<'a> Elf<'a> {
    /// Parses the header of a 32-bit little-endian i386 executable.
    pub fn parse(data: &'a [u8]) -> Result<Self, &'static str> {
        if data.get(0..4) != Some(b"\x7fELF".as_slice()) {
            return Err("not an ELF file");
        }
        const CLASS32: u8 = 1;
        const LITTLE_ENDIAN: u8 = 1;
        if data.get(4) != Some(&CLASS32) || data.get(5) != Some(&LITTLE_ENDIAN) {
            return Err("not a 32-bit little-endian ELF file");
        }
        if u16_at(data, 16) != Some(ET_EXEC) || u16_at(data, 18) != Some(EM_386) {
            return Err("not an i386 executable");
        }
        let elf = Elf {
            data,
            entry: u32_at(data, 24).ok_or("truncated header")?,
            phoff: u32_at(data, 28).ok_or("truncated header")?,
            phentsize: u16_at(data, 42).ok_or("truncated header")?,
            phnum: u16_at(data, 44).ok_or("truncated header")?,
        };
        if usize::from(elf.phentsize) < 32 {
            return Err("bad program-header size");
        }
        Ok(elf)
    }

    /// The `PT_LOAD` segments.
    pub fn segments(&self) -> impl Iterator<Item = Result<Segment, &'static str>> + '_ {
        (0..usize::from(self.phnum)).filter_map(move |i| {
            let base = self.phoff as usize + i * usize::from(self.phentsize);
            let d = self.data;
            let kind = u32_at(d, base)?;
            if kind != PT_LOAD {
                return None;
            }
            let seg = (|| {
                Some(Segment {
                    offset: u32_at(d, base + 4)?,
                    vaddr: u32_at(d, base + 8)?,
                    file_size: u32_at(d, base + 16)?,
                    mem_size: u32_at(d, base + 20)?,
                    flags: u32_at(d, base + 24)?,
                })
            })();
            Some(seg.ok_or("truncated program header"))
        })
    }

    /// The file bytes of `seg`.
    pub fn bytes(&self, seg: &Segment) -> Result<&'a [u8], &'static str> {
        let start = seg.offset as usize;
        let end = start
            .checked_add(seg.file_size as usize)
            .ok_or("segment overflows")?;
        self.data
            .get(start..end)
            .ok_or("segment past the end of the file")
    }
}
