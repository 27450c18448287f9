//! The persistent list of typed values behind a context's snapshot discipline.
//!
//! Newest first; each node holds its key, the rest of the list and one value inline (or a
//! removal marker): an insert is one allocation and never changes a node that clones share, so
//! clones are snapshots. A lookup walks the nodes comparing keys read straight from each node
//! (no virtual call per node; the value is reached through `dyn Any` only once found).

use std::{
    any::{Any, TypeId},
    sync::Arc,
};

/// A node: its key, the older nodes, and its value (sized when made, `dyn Any` in the list).
struct Node<V: ?Sized> {
    key: TypeId,
    next: Option<Arc<Link>>,
    value: V,
}

/// A node as the list holds it.
type Link = Node<dyn Any + Send + Sync>;

/// The value of a node that removes its key.
struct Removed;

impl<V: ?Sized> Drop for Node<V> {
    /// Drops the rest of the list iteratively, so a long list cannot overflow the stack.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(mut node) = next {
            next = Arc::get_mut(&mut node).and_then(|node| node.next.take());
        }
    }
}

/// A persistent (immutable, shared) list of typed values, newest first. Inserting pushes one
/// node in front (one allocation) and never changes nodes that clones share, so clones are
/// snapshots.
#[derive(Clone, Default)]
pub(super) struct Values(Option<Arc<Link>>);

impl Values {
    fn nodes(&self) -> impl Iterator<Item = &Link> {
        std::iter::successors(self.0.as_deref(), |node| node.next.as_deref())
    }

    pub(super) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let key = TypeId::of::<T>();
        // A removal's value is `Removed`: the downcast fails, the key reads as absent.
        self.nodes()
            .find(|node| node.key == key)?
            .value
            .downcast_ref::<T>()
    }

    fn push<V: Any + Send + Sync>(&mut self, key: TypeId, value: V) {
        let next = self.0.take();
        let node: Arc<Link> = Arc::new(Node { key, next, value });
        self.0 = Some(node);
    }

    pub(super) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.push(TypeId::of::<T>(), value);
    }

    pub(super) fn remove<T: Send + Sync + 'static>(&mut self) -> bool {
        if self.get::<T>().is_none() {
            return false;
        }
        self.push(TypeId::of::<T>(), Removed);
        true
    }

    /// The number of live values (for `Debug`).
    pub(super) fn len(&self) -> usize {
        let mut seen: Vec<TypeId> = Vec::new();
        let mut live = 0;
        for node in self.nodes() {
            if !seen.contains(&node.key) {
                seen.push(node.key);
                live += usize::from(!node.value.is::<Removed>());
            }
        }
        live
    }
}
