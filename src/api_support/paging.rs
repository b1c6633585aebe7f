//! Paging: a client's `(page, size)` as the database's `(offset, limit)`, clamped, and a page of
//! rows with the total the documents return beside it. Each API renders [`Page`] in its own
//! shape (heating `{total, page, size, records}`, points `{total, list}`, community Laravel
//! `pages`, charging `{total, list, pageNum, pageSize, pages}`).

/// A page asked for: 1-based `page`, `size` rows per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The page, from 1.
    pub page: u64,
    /// Rows per page, from 1.
    pub size: u64,
}

impl PageRequest {
    /// The page a client asked for, clamped: `page` at least 1, `size` between 1 and
    /// `max_size` (the contracts state both bounds; this keeps a bypassed check harmless).
    pub fn new(page: i64, size: i64, max_size: u64) -> PageRequest {
        PageRequest { page: page.max(1) as u64, size: (size.max(1) as u64).min(max_size.max(1)) }
    }

    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.size)
    }

    /// Rows to take.
    pub fn limit(&self) -> u64 {
        self.size
    }
}

/// One page of rows and the count of all rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// What was asked for.
    pub request: PageRequest,
    /// Rows matching, on every page.
    pub total: u64,
    /// This page's rows.
    pub items: Vec<T>,
}

impl<T> Page<T> {
    /// How many pages there are (0 when there are no rows).
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(self.request.size)
    }

    /// The same page with each row turned into what the wire needs.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { request: self.request, total: self.total, items: self.items.into_iter().map(f).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_clamp_and_pages_count() {
        let request = PageRequest::new(3, 20, 100);
        assert_eq!((request.offset(), request.limit()), (40, 20));
        assert_eq!(PageRequest::new(0, 0, 100), PageRequest { page: 1, size: 1 });
        assert_eq!(PageRequest::new(-5, 1000, 100), PageRequest { page: 1, size: 100 });
        assert_eq!(PageRequest::new(i64::MAX, 100, 100).offset(), u64::MAX, "no overflow");
        let page = Page { request: PageRequest::new(1, 10, 100), total: 21, items: vec![1, 2] };
        assert_eq!(page.pages(), 3);
        assert_eq!(page.map(|n| n * 10).items, vec![10, 20]);
        assert_eq!(Page::<u8> { request: PageRequest::new(1, 10, 100), total: 0, items: vec![] }.pages(), 0);
    }
}
