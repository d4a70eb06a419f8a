//! What the `Watch` server sends: a `WatchEvent`, built for one stream or encoded once for
//! every stream that sends the same one.
//!
//! A change reaching 10,000 streams of a tenant is the same event for all of them (the same
//! updates, the same cursor) unless a stream's prefixes keep only some of its updates.
//! Building the protobuf message per stream (key and value strings copied, the key parsed
//! again to tell a secret) and encoding it was ~10% of the fan-out's CPU; the first stream
//! encodes it into the delivery and the others copy the bytes (docs/BENCHMARKS.md). The
//! generated `Watch` server takes this type in place of `pb::WatchEvent` (build.rs); the
//! bytes on the wire are the same.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::pb;

#[derive(Debug, Clone, PartialEq)]
pub enum WatchFrame {
    Event(pb::WatchEvent),
    /// A `WatchEvent` encoded already.
    Encoded(Bytes),
}

impl Default for WatchFrame {
    fn default() -> Self {
        WatchFrame::Event(pb::WatchEvent::default())
    }
}

impl From<pb::WatchEvent> for WatchFrame {
    fn from(event: pb::WatchEvent) -> Self {
        WatchFrame::Event(event)
    }
}

impl WatchFrame {
    /// `event` encoded once, to be sent as is by every stream that has the same event.
    pub fn encode(event: &pb::WatchEvent) -> Bytes {
        Bytes::from(event.encode_to_vec())
    }
}

impl Message for WatchFrame {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            WatchFrame::Event(event) => event.encode_raw(buf),
            WatchFrame::Encoded(bytes) => buf.put_slice(bytes),
        }
    }

    /// Decoding (never needed by the server) gives the event.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if let WatchFrame::Encoded(bytes) = self {
            *self = WatchFrame::Event(pb::WatchEvent::decode(bytes.clone())?);
        }
        match self {
            WatchFrame::Event(event) => event.merge_field(tag, wire_type, buf, ctx),
            WatchFrame::Encoded(_) => Ok(()),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            WatchFrame::Event(event) => event.encoded_len(),
            WatchFrame::Encoded(bytes) => bytes.len(),
        }
    }

    fn clear(&mut self) {
        *self = WatchFrame::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::watch_event::Event;

    fn event() -> pb::WatchEvent {
        pb::WatchEvent {
            event: Some(Event::Updates(pb::UpdateBatch {
                updates: vec![pb::Update {
                    key: "tenant_config_flags/beta".into(),
                    op: pb::Op::Put.into(),
                    version: 3,
                    revision: 7,
                    value_json: Some("{\"on\":true}".into()),
                    ..Default::default()
                }],
                cursor: Some(pb::Cursor {
                    tenant: 7,
                    ..Default::default()
                }),
            })),
        }
    }

    #[test]
    fn an_encoded_frame_is_the_same_bytes_as_its_event() {
        let event = event();
        let built = WatchFrame::from(event.clone()).encode_to_vec();
        let encoded = WatchFrame::Encoded(WatchFrame::encode(&event));
        assert_eq!(encoded.encoded_len(), built.len());
        assert_eq!(encoded.encode_to_vec(), built);
        assert_eq!(pb::WatchEvent::decode(built.as_slice()).unwrap(), event);
    }

    #[test]
    fn a_frame_decodes_as_its_event() {
        let event = event();
        let decoded = WatchFrame::decode(event.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, WatchFrame::Event(event));
    }
}
