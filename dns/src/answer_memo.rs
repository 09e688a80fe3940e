//! Zone answers remembered by the exact bytes of the question that got them, per UDP thread: the
//! same query (everything after its 2-byte id: flags, question, EDNS) against the same zone gets
//! the same answer, so a repeat is answered by copying the bytes and writing its id, without
//! parsing or encoding. Only answers the zone gave are kept (never forwarded ones, whose TTLs
//! age); a new zone empties the memo, and so does reaching its bound.

use std::{collections::HashMap, sync::Arc};

use hickory_proto::{op::ResponseCode, rr::RecordType};

use crate::Zone;

/// Questions remembered per thread at most.
const ENTRIES: usize = 4096;
/// The longest question remembered (a plain query with EDNS is well under 300 bytes).
const LONGEST: usize = 512;

/// What a question got: the answer's bytes (id zeroed) and what the metrics count of it.
pub(crate) struct Remembered {
    bytes: Vec<u8>,
    pub(crate) qtype: Option<RecordType>,
    pub(crate) code: ResponseCode,
}

/// One thread's memo, valid for one zone.
#[derive(Default)]
pub(crate) struct AnswerMemo {
    zone: Option<Arc<Zone>>,
    answers: HashMap<Box<[u8]>, Remembered>,
}

impl AnswerMemo {
    /// The remembered answer to `query` in `zone`, its id set to the query's, into `out`.
    pub(crate) fn answer(
        &mut self,
        zone: &Arc<Zone>,
        query: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<&Remembered> {
        if !self
            .zone
            .as_ref()
            .is_some_and(|kept| Arc::ptr_eq(kept, zone))
        {
            self.answers.clear();
            self.zone = Some(zone.clone());
            return None;
        }
        let key = query.get(2..)?;
        let remembered = self.answers.get(key)?;
        out.clear();
        out.extend_from_slice(&query[..2]);
        out.extend_from_slice(remembered.bytes.get(2..)?);
        Some(remembered)
    }

    /// Remembers `answer` to `query`, both as sent, if it came from `zone` (the one the memo is
    /// for) and the query is not too long.
    pub(crate) fn remember(
        &mut self,
        zone: &Arc<Zone>,
        query: &[u8],
        answer: &[u8],
        qtype: Option<RecordType>,
        code: ResponseCode,
    ) {
        if query.len() > LONGEST
            || answer.len() < 2
            || !self
                .zone
                .as_ref()
                .is_some_and(|kept| Arc::ptr_eq(kept, zone))
        {
            return;
        }
        if self.answers.len() >= ENTRIES {
            self.answers.clear();
        }
        let mut bytes = answer.to_vec();
        bytes[..2].fill(0);
        self.answers
            .insert(query[2..].into(), Remembered { bytes, qtype, code });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ZoneConfig;

    fn zone() -> Arc<Zone> {
        Arc::new(Zone::new(ZoneConfig::default(), []))
    }

    #[test]
    fn a_repeat_gets_the_answer_with_its_own_id_until_the_zone_changes() {
        let (first, second) = (zone(), zone());
        let mut memo = AnswerMemo::default();
        let mut out = Vec::new();
        let query = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 1, 0, 1,
        ];
        let answer = [0x12, 0x34, 0x85, 0, 0, 1, 0, 1];
        assert!(memo.answer(&first, &query, &mut out).is_none(), "empty");
        memo.remember(
            &first,
            &query,
            &answer,
            Some(RecordType::A),
            ResponseCode::NoError,
        );
        let mut again = query;
        again[..2].copy_from_slice(&[0xab, 0xcd]);
        let remembered = memo.answer(&first, &again, &mut out).expect("remembered");
        assert_eq!(remembered.code, ResponseCode::NoError);
        assert_eq!(out, [0xab, 0xcd, 0x85, 0, 0, 1, 0, 1]);
        // Another question (a flag differs) is not the same.
        let mut other = again;
        other[2] = 0;
        assert!(memo.answer(&first, &other, &mut out).is_none());
        // A new zone forgets everything, and an answer from the old one is not kept.
        assert!(memo.answer(&second, &again, &mut out).is_none());
        memo.remember(
            &first,
            &query,
            &answer,
            Some(RecordType::A),
            ResponseCode::NoError,
        );
        assert!(memo.answer(&second, &again, &mut out).is_none());
    }

    #[test]
    fn the_memo_is_bounded() {
        let zone = zone();
        let mut memo = AnswerMemo::default();
        let mut out = Vec::new();
        assert!(memo.answer(&zone, &[0; 12], &mut out).is_none());
        for n in 0..=ENTRIES as u32 {
            let query = [&[0, 0][..], &n.to_be_bytes()].concat();
            memo.remember(&zone, &query, &[0, 0, 1], None, ResponseCode::NoError);
            assert!(memo.answers.len() <= ENTRIES);
        }
        assert_eq!(
            memo.answers.len(),
            1,
            "cleared when full, then the newest kept"
        );
        memo.remember(
            &zone,
            &[0; LONGEST + 1],
            &[0, 0, 1],
            None,
            ResponseCode::NoError,
        );
        assert_eq!(memo.answers.len(), 1, "too long a question is not kept");
    }
}
