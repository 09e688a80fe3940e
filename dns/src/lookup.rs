//! Answering one question from a [`Zone`]: the answer, NODATA, NXDOMAIN (both with the SOA), or
//! "not ours" for the caller to forward. Owner names equal to the question keep its case.

use std::borrow::Cow;
use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::PodRecords;
use crate::pods::{PodQuestion, pod_question};
use crate::records;
use crate::zone::{Node, Zone};

/// The outcome of one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// NOERROR, authoritative: the answer section, and the additional section (A records of SRV targets).
    Answer {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// NOERROR without answers (name exists, not this type; or an empty non-terminal): SOA in authority.
    NoData { soa: Record },
    /// NXDOMAIN, authoritative, SOA in authority.
    NxDomain { soa: Record },
    /// Not ours (outside the cluster zone and not a reverse name we hold): the caller forwards it.
    NotInZone,
}

impl Lookup {
    /// The answer section (empty unless [`Lookup::Answer`]).
    pub fn answers(&self) -> &[Record] {
        match self {
            Self::Answer { answers, .. } => answers,
            _ => &[],
        }
    }

    /// The additional section (empty unless [`Lookup::Answer`]).
    pub fn additionals(&self) -> &[Record] {
        match self {
            Self::Answer { additionals, .. } => additionals,
            _ => &[],
        }
    }

    /// The SOA of the authority section, for NODATA and NXDOMAIN.
    pub fn soa(&self) -> Option<&Record> {
        match self {
            Self::NoData { soa } | Self::NxDomain { soa } => Some(soa),
            _ => None,
        }
    }
}

impl Zone {
    /// Answers one question. `name` is as asked (its case is kept in every owner name that equals it).
    ///
    /// A name the zone holds answers its RRset of `qtype` (all of them for ANY; its CNAME for any
    /// type), else NODATA; a missing name under the zone is NXDOMAIN, except synthesised pod names.
    /// Outside the zone, only PTR (or ANY) questions for the reverse names of the zone's addresses
    /// are answered; everything else is [`Lookup::NotInZone`].
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Lookup {
        let asked = fully_qualified(name);
        if self.config().domain.zone_of(&asked) {
            match self.node(&asked) {
                Some(node) => self.answer_from(node, &asked, qtype),
                None => self.answer_pod(&asked, qtype),
            }
        } else {
            self.answer_reverse(&asked, qtype)
        }
    }

    fn answer_from(&self, node: &Node, asked: &Name, qtype: RecordType) -> Lookup {
        if let Some(alias) = node.rrset(RecordType::CNAME) {
            return answer(owned_by(asked, alias), Vec::new());
        }
        let matching: Vec<&Record> = if qtype == RecordType::ANY {
            node.rrsets().flatten().collect()
        } else {
            node.rrset(qtype).into_iter().flatten().collect()
        };
        if matching.is_empty() {
            return self.no_data();
        }
        let additionals = self.srv_target_addresses(&matching);
        answer(owned_by(asked, matching), additionals)
    }

    /// `a-b-c-d.<ns>.pod.<zone>` when pod names resolve; every other missing name is NXDOMAIN.
    fn answer_pod(&self, asked: &Name, qtype: RecordType) -> Lookup {
        let Some(pods) = self.pods_name() else {
            return self.nx_domain();
        };
        if self.config().pods == PodRecords::Disabled || !pods.zone_of(asked) {
            return self.nx_domain();
        }
        let depth = asked.iter().len().saturating_sub(pods.iter().len());
        let labels: Vec<&[u8]> = asked.iter().take(depth).collect();
        match pod_question(&labels) {
            PodQuestion::Namespace => self.no_data(),
            PodQuestion::Address(address) => {
                let family = match address {
                    IpAddr::V4(_) => RecordType::A,
                    IpAddr::V6(_) => RecordType::AAAA,
                };
                if qtype == family || qtype == RecordType::ANY {
                    let record = records::address(asked.clone(), address, self.config().ttl);
                    answer(vec![record], Vec::new())
                } else {
                    self.no_data()
                }
            }
            PodQuestion::Nothing => self.nx_domain(),
        }
    }

    /// PTR for a reverse name the zone holds; anything else outside the zone is not ours.
    fn answer_reverse(&self, asked: &Name, qtype: RecordType) -> Lookup {
        match self.reverse_rrset(asked) {
            Some(pointers) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
                answer(owned_by(asked, pointers), Vec::new())
            }
            _ => Lookup::NotInZone,
        }
    }

    /// The A and AAAA records of the SRV answers' targets, each target once.
    fn srv_target_addresses(&self, answers: &[&Record]) -> Vec<Record> {
        let mut targets: Vec<&Name> = Vec::new();
        for record in answers {
            if let RData::SRV(srv) = &record.data
                && !targets.contains(&&srv.target)
            {
                targets.push(&srv.target);
            }
        }
        targets
            .into_iter()
            .filter_map(|target| self.node(target))
            .flat_map(Node::rrsets)
            .flatten()
            .filter(|record| records::is_address(record))
            .cloned()
            .collect()
    }

    fn no_data(&self) -> Lookup {
        Lookup::NoData {
            soa: self.soa().clone(),
        }
    }

    fn nx_domain(&self) -> Lookup {
        Lookup::NxDomain {
            soa: self.soa().clone(),
        }
    }
}

fn answer(answers: Vec<Record>, additionals: Vec<Record>) -> Lookup {
    Lookup::Answer {
        answers,
        additionals,
    }
}

/// Copies of the records with the question's name (and case) as owner.
fn owned_by<'a>(asked: &Name, records: impl IntoIterator<Item = &'a Record>) -> Vec<Record> {
    records
        .into_iter()
        .map(|record| {
            let mut owned = record.clone();
            owned.name = asked.clone();
            owned
        })
        .collect()
}

/// The question as a fully qualified name (a relative one is read from the root).
fn fully_qualified(name: &Name) -> Cow<'_, Name> {
    if name.is_fqdn() {
        Cow::Borrowed(name)
    } else {
        let mut qualified = name.clone();
        qualified.set_fqdn(true);
        Cow::Owned(qualified)
    }
}
