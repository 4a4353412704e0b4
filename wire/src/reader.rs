//! A cursor over one frame's body that checks every field is there before reading it; no I/O.

use byteorder::{BigEndian, ByteOrder};

use crate::error::WireError;
use crate::frame::{AuthBytes, Opcode, AUTH_LEN};

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    op: u8,
}

impl<'a> Reader<'a> {
    /// The body `buf` of an `op` frame; `op` goes into every error.
    pub(crate) fn new(buf: &'a [u8], op: Opcode) -> Reader<'a> {
        Reader { buf, op: op as u8 }
    }

    /// Bytes not read yet.
    pub(crate) fn left(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn malformed(&self, reason: &'static str) -> WireError {
        WireError::Malformed {
            op: self.op,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(self.malformed("body shorter than its fields"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn flag(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.malformed("flag byte is neither 0 nor 1")),
        }
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(BigEndian::read_u16(self.take(2)?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(BigEndian::read_u32(self.take(4)?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(BigEndian::read_u64(self.take(8)?))
    }

    /// A nonce or proof: exactly [`AUTH_LEN`] bytes.
    pub(crate) fn auth(&mut self) -> Result<AuthBytes, WireError> {
        let mut out = [0; AUTH_LEN];
        out.copy_from_slice(self.take(AUTH_LEN)?);
        Ok(out)
    }

    /// A flag, then a nonce or proof only when the flag is 1.
    pub(crate) fn opt_auth(&mut self) -> Result<Option<AuthBytes>, WireError> {
        Ok(match self.flag()? {
            true => Some(self.auth()?),
            false => None,
        })
    }

    /// A u32 length then that many bytes (keys and values), borrowed from the body.
    pub(crate) fn slice(&mut self) -> Result<&'a [u8], WireError> {
        let n = BigEndian::read_u32(self.take(4)?) as usize;
        self.take(n)
    }

    /// [`Reader::slice`], copied.
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        Ok(self.slice()?.to_vec())
    }

    /// A u16 length then that many bytes of UTF-8 (ids, addresses, error text).
    pub(crate) fn string(&mut self) -> Result<String, WireError> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.malformed("string is not UTF-8"))
    }

    /// The body must end here.
    pub(crate) fn end(&self) -> Result<(), WireError> {
        if !self.buf.is_empty() {
            return Err(self.malformed("trailing bytes after the body"));
        }
        Ok(())
    }
}
