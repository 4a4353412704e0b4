//! What crossed the network: every frame sent on an open connection (but those a drop rule
//! took), in send order, as the bytes that were written, with the nodes at its two ends.

use dsm_wire::{decode_with_max, Body, Frame};

use super::net::{Net, NodeId};

pub struct Sent {
    pub from: NodeId,
    pub to: NodeId,
    pub bytes: Vec<u8>,
}

impl Sent {
    pub fn frame(&self) -> Frame {
        decode_with_max(&self.bytes, u32::MAX as usize)
            .expect("a valid frame")
            .expect("a whole frame")
            .0
    }
}

impl Net {
    pub fn sent(&self) -> &[Sent] {
        &self.log
    }

    /// Whether `from` sent `to` a frame whose body satisfies `pred`.
    pub fn saw(&self, from: NodeId, to: NodeId, pred: impl Fn(&Body) -> bool) -> bool {
        self.log
            .iter()
            .any(|s| s.from == from && s.to == to && pred(&s.frame().body))
    }

    /// Every byte sent either way, in order.
    pub fn wire_bytes(&self) -> Vec<u8> {
        self.log
            .iter()
            .flat_map(|s| s.bytes.iter().copied())
            .collect()
    }

    pub fn clear_log(&mut self) {
        self.log.clear();
    }
}
