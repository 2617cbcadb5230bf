//! Property tests for the frame codec: any sequence of payloads, cut into websocket
//! messages anywhere, comes out of the decoder unchanged and in order.

use bytes::BytesMut;
use proptest::prelude::*;
use wa_noise::{FrameDecoder, WA_HEADER, encode_frame, encode_intro};

fn cut_and_decode(
    mut decoder: FrameDecoder,
    wire: &[u8],
    cuts: &[usize],
) -> Result<Vec<Vec<u8>>, wa_noise::Error> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    let mut out = Vec::new();
    for w in points.windows(2) {
        decoder.push(&wire[w[0]..w[1]])?;
        while let Some(f) = decoder.next_frame()? {
            out.push(f.to_vec());
        }
    }
    assert_eq!(decoder.buffered(), 0);
    Ok(out)
}

proptest! {
    #[test]
    fn client_side_reassembly(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut wire = BytesMut::new();
        for p in &payloads {
            encode_frame(p, &mut wire).unwrap();
        }
        let got = cut_and_decode(FrameDecoder::client(), &wire, &cuts).unwrap();
        prop_assert_eq!(got, payloads);
    }

    #[test]
    fn server_side_reassembly_with_intro(
        routing in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut wire = BytesMut::new();
        encode_intro(routing.as_deref(), &mut wire).unwrap();
        for p in &payloads {
            encode_frame(p, &mut wire).unwrap();
        }
        let mut decoder = FrameDecoder::server();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let mut got = Vec::new();
        for w in points.windows(2) {
            decoder.push(&wire[w[0]..w[1]]).unwrap();
            while let Some(f) = decoder.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        prop_assert_eq!(got, payloads);
        let intro = decoder.intro().unwrap();
        prop_assert_eq!(&intro.routing_info, &routing);
        prop_assert_eq!(intro.header, WA_HEADER);
    }

    #[test]
    fn limit_is_enforced_whatever_the_cut(
        len in 101usize..400,
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = BytesMut::new();
        encode_frame(&[1, 2, 3], &mut wire).unwrap();
        encode_frame(&vec![0u8; len], &mut wire).unwrap();
        let r = cut_and_decode(FrameDecoder::client().with_max_frame_len(100), &wire, &cuts);
        prop_assert_eq!(r, Err(wa_noise::Error::FrameTooLarge { len, max: 100 }));
    }
}
