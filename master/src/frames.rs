//! The buffers of large WRITE frames the event loop took out of their connections
//! (`Conn::take_frame`): the operations keep their values there (`SharedBytes`), and once no
//! operation holds one any more it is read into again, for the next large frame, instead of
//! a buffer the allocator and the kernel would have to zero anew (a memset of 1 MiB per WRITE
//! on the master, 4.5% of the master's and slaves' CPU at 4 connections x 8 in flight).

use std::rc::Rc;

#[derive(Default)]
pub(crate) struct Frames {
    /// Buffers handed out, some perhaps no longer held by anyone else.
    taken: Vec<Rc<Vec<u8>>>,
    /// Buffers no one holds, ready to be read into.
    free: Vec<Vec<u8>>,
}

impl Frames {
    /// Buffers followed at most (as many large WRITEs in flight); past that a taken buffer is
    /// not followed, and is freed as before when its operation ends.
    const TRACKED: usize = 256;
    /// Free buffers kept at most: what this costs while idle is `SPARE` frames (8.5 MiB at
    /// the default 1 MiB values). Writes end in bursts (a client's pipeline of 8): with 2
    /// kept, most of the next burst's frames were read into buffers zeroed anew.
    const SPARE: usize = 8;

    /// A buffer no operation holds any more, if there is one.
    pub fn spare(&mut self) -> Option<Vec<u8>> {
        let mut i = 0;
        while i < self.taken.len() {
            if Rc::strong_count(&self.taken[i]) > 1 {
                i += 1;
                continue;
            }
            let done = self.taken.swap_remove(i);
            if self.free.len() < Self::SPARE {
                if let Ok(buf) = Rc::try_unwrap(done) {
                    self.free.push(buf);
                }
            }
        }
        self.free.pop()
    }

    /// Follow a buffer just handed out.
    pub fn track(&mut self, frame: &Rc<Vec<u8>>) {
        if self.taken.len() < Self::TRACKED {
            self.taken.push(Rc::clone(frame));
        }
    }

    /// Bytes of the free buffers (held while idle).
    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.free.iter().map(|b| b.capacity()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_only_once_no_one_holds_it() {
        let mut frames = Frames::default();
        let a = Rc::new(vec![1u8; 1000]);
        let b = Rc::new(vec![2u8; 2000]);
        frames.track(&a);
        frames.track(&b);
        assert_eq!(frames.spare(), None, "both still held");
        drop(a);
        let got = frames.spare().expect("a is free");
        assert_eq!(
            got,
            vec![1u8; 1000],
            "its bytes as they were (not zeroed again)"
        );
        assert_eq!(frames.spare(), None, "b is still held");
        drop(b);
        assert_eq!(frames.spare().map(|v| v.len()), Some(2000));
    }

    #[test]
    fn at_most_spare_free_buffers_are_kept() {
        let mut frames = Frames::default();
        for _ in 0..Frames::SPARE + 3 {
            let f = Rc::new(vec![0u8; 100]);
            frames.track(&f);
        }
        let one = frames.spare().expect("free");
        assert_eq!(one.len(), 100);
        assert_eq!(
            frames.idle_bytes(),
            (Frames::SPARE - 1) * 100,
            "SPARE kept, the other three freed"
        );
    }
}
