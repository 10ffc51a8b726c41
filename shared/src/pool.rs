//! `SourcePool`: the pool's active numbers, cached briefly by a warm container, and the random
//! choice of the number that calls.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::phone::PhoneNumber;
use crate::store::{Pool, StoreError};

pub struct SourcePool {
    store: Pool,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<Vec<PhoneNumber>>)>>,
    rng: Mutex<StdRng>,
}

impl SourcePool {
    pub fn new(store: Pool, ttl: Duration) -> Self {
        Self::with_rng(store, ttl, StdRng::from_os_rng())
    }

    pub fn with_rng(store: Pool, ttl: Duration, rng: StdRng) -> Self {
        SourcePool {
            store,
            ttl,
            cached: Mutex::new(None),
            rng: Mutex::new(rng),
        }
    }

    /// Reads the pool ahead of the first request (an endpoint's `init` does, beside its other
    /// waits). A failure is only logged: the first request reads the pool again.
    pub async fn prefetch(&self) {
        if let Err(error) = self.active_numbers().await {
            tracing::warn!(%error, "the pool could not be read at start");
        }
    }

    /// A random active number other than `callee`, or `None` when the pool has none.
    pub async fn pick(&self, callee: &PhoneNumber) -> Result<Option<PhoneNumber>, StoreError> {
        let numbers = self.active_numbers().await?;
        let candidates: Vec<&PhoneNumber> = numbers.iter().filter(|n| *n != callee).collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        let i = self
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(0..candidates.len());
        Ok(Some(candidates[i].clone()))
    }

    /// Up to `n` distinct active numbers other than `callee`, in a random order.
    pub async fn sample(
        &self,
        callee: &PhoneNumber,
        n: usize,
    ) -> Result<Vec<PhoneNumber>, StoreError> {
        let numbers = self.active_numbers().await?;
        let mut candidates: Vec<PhoneNumber> =
            numbers.iter().filter(|m| *m != callee).cloned().collect();
        candidates.shuffle(&mut *self.rng.lock().unwrap_or_else(|p| p.into_inner()));
        candidates.truncate(n);
        Ok(candidates)
    }

    async fn active_numbers(&self) -> Result<Arc<Vec<PhoneNumber>>, StoreError> {
        if let Some((at, numbers)) = &*self.cached.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < self.ttl
        {
            return Ok(numbers.clone());
        }
        let numbers: Arc<Vec<PhoneNumber>> = Arc::new(
            self.store
                .entries()
                .await?
                .into_iter()
                .filter(|e| e.active)
                .map(|e| e.number)
                .collect(),
        );
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), numbers.clone()));
        Ok(numbers)
    }
}
