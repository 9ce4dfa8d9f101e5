//! A message's headers: those its request gave every message it carried (a batch's
//! `Sluice-Header-*`), held once and shared by all of them, then the message's own. Stored as one
//! list, the request's first, so the store's encoding is a plain sequence of name-value pairs.

use std::sync::Arc;

use serde::de::Deserializer;
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// One header: its name and value.
pub type Header = (String, String);

/// A message's headers, in order: the request's shared ones, then its own.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    shared: Option<Arc<[Header]>>,
    own: Vec<Header>,
}

impl Headers {
    /// `own` after `shared`, which other messages of the same request hold too.
    pub fn with_shared(shared: Arc<[Header]>, own: Vec<Header>) -> Self {
        let shared = (!shared.is_empty()).then_some(shared);
        Self { shared, own }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.shared.iter().flat_map(|s| s.iter()).chain(&self.own)
    }

    pub fn len(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.len()) + self.own.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a header of the message's own.
    pub fn push(&mut self, header: Header) {
        self.own.push(header);
    }

    /// Keeps only the headers `keep` accepts.
    pub fn retain(self, mut keep: impl FnMut(&Header) -> bool) -> Self {
        self.into_iter().filter(|h| keep(h)).collect()
    }
}

impl From<Vec<Header>> for Headers {
    fn from(own: Vec<Header>) -> Self {
        Self { shared: None, own }
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(headers: I) -> Self {
        Self::from(headers.into_iter().collect::<Vec<_>>())
    }
}

impl IntoIterator for Headers {
    type Item = Header;
    type IntoIter = std::iter::Chain<std::vec::IntoIter<Header>, std::vec::IntoIter<Header>>;

    /// The headers, owned: the shared ones are copied here, once a message leaves its request.
    fn into_iter(self) -> Self::IntoIter {
        let shared = self.shared.map_or_else(Vec::new, |s| s.to_vec());
        shared.into_iter().chain(self.own)
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = Box<dyn Iterator<Item = &'a Header> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Equal when they list the same headers in the same order, however they are held.
impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// A sequence of name-value pairs, as a `Vec<(String, String)>` is written.
impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for header in self.iter() {
            seq.serialize_element(header)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Header>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, value: &str) -> Header {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn shared_headers_come_first_and_are_held_once() {
        let shared: Arc<[Header]> = vec![pair("trace", "t-1")].into();
        let first = Headers::with_shared(shared.clone(), vec![pair("own", "1")]);
        let second = Headers::with_shared(shared.clone(), Vec::new());
        assert_eq!(Arc::strong_count(&shared), 3, "not copied per message");
        assert_eq!(
            first.iter().cloned().collect::<Vec<_>>(),
            [pair("trace", "t-1"), pair("own", "1")]
        );
        assert_eq!(second.len(), 1);
        assert_eq!(
            first,
            Headers::from(vec![pair("trace", "t-1"), pair("own", "1")])
        );
    }

    #[test]
    fn stored_like_a_list_of_pairs() {
        let shared: Arc<[Header]> = vec![pair("a", "1")].into();
        let headers = Headers::with_shared(shared, vec![pair("b", "2")]);
        let list = vec![pair("a", "1"), pair("b", "2")];
        let bytes = postcard::to_stdvec(&headers).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&list).unwrap());
        assert_eq!(postcard::from_bytes::<Headers>(&bytes).unwrap(), headers);
    }
}
