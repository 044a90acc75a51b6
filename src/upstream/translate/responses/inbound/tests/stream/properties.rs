//! Arbitrary upstream event sequences, cut anywhere: the output is
//! always a well-formed Responses stream.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;

use super::{chunk, consistent, parse, request, transcode, usage_chunk, DONE};

fn piece() -> impl Strategy<Value = String> {
    let text = prop::sample::select(vec!["a", "é€", "{\"", "}", " ", ""]);
    let finish = prop::sample::select(vec!["stop", "length", "tool_calls", "content_filter"]);
    let id = prop::option::of(prop::sample::select(vec!["call_1", "call_2"]));
    let name = prop::option::of(prop::sample::select(vec!["get_weather", "ns__g", ""]));
    prop_oneof![
        3 => text.clone().prop_map(|t| chunk(json!({"content": t}), None)),
        2 => text.clone().prop_map(|t| chunk(json!({"reasoning_content": t}), None)),
        1 => text.clone().prop_map(|t| chunk(json!({"refusal": t}), None)),
        3 => (0u64..3, id, name, text).prop_map(|(index, id, name, args)| {
            let mut call = json!({"index": index, "function": {"arguments": args}});
            if let Some(id) = id {
                call["id"] = json!(id);
            }
            if let Some(name) = name {
                call["function"]["name"] = json!(name);
            }
            chunk(json!({"tool_calls": [call]}), None)
        }),
        1 => finish.prop_map(|f| chunk(json!({}), Some(f))),
        1 => Just(usage_chunk()),
        1 => Just("data: {\"error\":{\"message\":\"m\",\"type\":\"t\"}}\n\n".to_string()),
        1 => Just(DONE.to_string()),
        1 => Just(": ping\n\ndata: {nope\n\n".to_string()),
        1 => Just(chunk(json!({"tool_calls": [{"index": 999}]}), None)),
    ]
}

proptest! {
    #![proptest_config(crate::upstream::translate::responses::inbound::tests::config(64))]

    #[test]
    fn any_upstream_gives_a_well_formed_stream(
        pieces in prop::collection::vec(piece(), 0..24),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let input = pieces.concat();
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        at.sort_unstable();
        at.dedup();
        let whole = parse(&transcode(&request(), &input, &[]));
        let events = parse(&transcode(&request(), &input, &at));
        prop_assert_eq!(super::normalized(&events), super::normalized(&whole));
        events.iter().for_each(super::sdk::check_event);
        consistent(&events);
        // At most one terminal event, and it is the last.
        let terminal = |e: &serde_json::Value| {
            matches!(e["type"].as_str(), Some("response.completed" | "response.incomplete" | "response.failed"))
        };
        let count = events.iter().filter(|e| terminal(e)).count();
        prop_assert!(count <= 1);
        if count == 1 {
            prop_assert!(terminal(events.last().unwrap()));
        }
        // Something upstream: the stream starts properly.
        if let Some(first) = events.first() {
            prop_assert_eq!(&first["type"], "response.created");
            prop_assert_eq!(&events[1]["type"], "response.in_progress");
        }
    }
}
