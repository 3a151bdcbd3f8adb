//! The control socket's decoder on any bytes: frames (a 4-byte big-endian
//! length, then JSON) read as jarvisd reads requests and jarvisctl reads
//! answers, and the JSON bodies on their own. Whatever decodes must encode
//! and decode back to the same value.
#![no_main]

use std::fmt::Debug;
use std::io::Cursor;

use jarvis_proto::{read_frame, write_frame, FrameError, Hello, Request, Response};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};

/// Read frames from `data` until the first error, as a connection would.
fn frames<T: DeserializeOwned + Serialize + PartialEq + Debug>(data: &[u8]) {
    let mut r = Cursor::new(data);
    for _ in 0..16 {
        match read_frame::<T>(&mut r) {
            Ok(msg) => round_trip(&msg),
            Err(FrameError::TooLarge(n)) => assert!(n > jarvis_proto::MAX_FRAME),
            Err(_) => return,
        }
    }
}

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + Debug>(msg: &T) {
    let mut buf = Vec::new();
    write_frame(&mut buf, msg).expect("a decoded message encodes");
    let back: T = read_frame(&mut buf.as_slice()).expect("an encoded message decodes");
    assert_eq!(&back, msg, "the message changed on its way back");
}

fn body<T: DeserializeOwned + Serialize + PartialEq + Debug>(data: &[u8]) {
    if let Ok(msg) = serde_json::from_slice::<T>(data) {
        round_trip(&msg);
    }
}

fuzz_target!(|data: &[u8]| {
    frames::<Request>(data);
    frames::<Response>(data);
    frames::<Hello>(data);
    body::<Request>(data);
    body::<Response>(data);
    body::<Hello>(data);
});
