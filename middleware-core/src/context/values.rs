//! The persistent list of typed values behind a context's snapshot discipline.

use std::{
    any::{Any, TypeId},
    sync::Arc,
};

/// One node of the persistent value list: a value (or the removal of one) and the rest.
trait Node: Send + Sync {
    fn key(&self) -> TypeId;
    /// `None` for a removal.
    fn value(&self) -> Option<&(dyn Any + Send + Sync)>;
    fn next(&self) -> Option<&Arc<dyn Node>>;
    fn take_next(&mut self) -> Option<Arc<dyn Node>>;
}

struct ValueNode<T> {
    value: T,
    next: Option<Arc<dyn Node>>,
}

struct Removal {
    key: TypeId,
    next: Option<Arc<dyn Node>>,
}

impl<T: Send + Sync + 'static> Node for ValueNode<T> {
    fn key(&self) -> TypeId {
        TypeId::of::<T>()
    }

    fn value(&self) -> Option<&(dyn Any + Send + Sync)> {
        Some(&self.value)
    }

    fn next(&self) -> Option<&Arc<dyn Node>> {
        self.next.as_ref()
    }

    fn take_next(&mut self) -> Option<Arc<dyn Node>> {
        self.next.take()
    }
}

impl Node for Removal {
    fn key(&self) -> TypeId {
        self.key
    }

    fn value(&self) -> Option<&(dyn Any + Send + Sync)> {
        None
    }

    fn next(&self) -> Option<&Arc<dyn Node>> {
        self.next.as_ref()
    }

    fn take_next(&mut self) -> Option<Arc<dyn Node>> {
        self.next.take()
    }
}

/// Drops the rest of a list iteratively, so a long list cannot overflow the stack.
fn drop_list(mut next: Option<Arc<dyn Node>>) {
    while let Some(mut node) = next {
        next = Arc::get_mut(&mut node).and_then(Node::take_next);
    }
}

impl<T> Drop for ValueNode<T> {
    fn drop(&mut self) {
        drop_list(self.next.take());
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        drop_list(self.next.take());
    }
}

/// A persistent (immutable, shared) list of typed values, newest first. Inserting pushes one
/// node in front (one allocation) and never changes nodes that clones share, so clones are
/// snapshots.
#[derive(Clone, Default)]
pub(super) struct Values(Option<Arc<dyn Node>>);

impl Values {
    fn nodes(&self) -> impl Iterator<Item = &dyn Node> {
        std::iter::successors(self.0.as_deref(), |node| node.next().map(|next| &**next))
    }

    pub(super) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.nodes()
            .find(|node| node.key() == TypeId::of::<T>())?
            .value()?
            .downcast_ref::<T>()
    }

    pub(super) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let next = self.0.take();
        self.0 = Some(Arc::new(ValueNode { value, next }));
    }

    pub(super) fn remove<T: Send + Sync + 'static>(&mut self) -> bool {
        if self.get::<T>().is_none() {
            return false;
        }
        let next = self.0.take();
        self.0 = Some(Arc::new(Removal {
            key: TypeId::of::<T>(),
            next,
        }));
        true
    }

    /// The number of live values (for `Debug`).
    pub(super) fn len(&self) -> usize {
        let mut seen: Vec<TypeId> = Vec::new();
        let mut live = 0;
        for node in self.nodes() {
            if !seen.contains(&node.key()) {
                seen.push(node.key());
                live += usize::from(node.value().is_some());
            }
        }
        live
    }
}
