//! Fuzzes the link message parser: any input either fails to decode or
//! decodes to a message that re-encodes and decodes to itself, using no more
//! bytes than it was given. The header check must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_transport::message::{Header, LinkMessage, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Some(head) = data.get(..HEADER_LEN) {
        let head: [u8; HEADER_LEN] = head.try_into().unwrap_or([0; HEADER_LEN]);
        if let Ok(header) = Header::decode(head) {
            let _ = LinkMessage::decode_body(header, &data[HEADER_LEN..]);
        }
    }
    if let Ok((message, used)) = LinkMessage::decode(data) {
        assert!(used <= data.len());
        let encoded = message.encode();
        let (again, again_used) =
            LinkMessage::decode(&encoded).expect("a re-encoded message decodes");
        assert_eq!(again, message);
        assert_eq!(again_used, encoded.len());
    }
});
