//! Read-only SPI queries. pgrx's `Spi::get_one` runs its query as an update, which first
//! gives the transaction an id: a transaction that only looked something up then commits with
//! a WAL flush, and counts as a local write for two-phase commit (a write on one node then
//! takes two-phase commit). Lookups go through here instead.

use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::spi::{Spi, SpiResult};

/// The first column of the first row of a read-only query.
pub fn get_one<A: FromDatum + IntoDatum>(query: &str) -> SpiResult<Option<A>> {
    Spi::connect(|client| client.select(query, Some(1), &[])?.first().get_one())
}

/// [`get_one`] with parameters.
pub fn get_one_with_args<A: FromDatum + IntoDatum>(
    query: &str,
    args: &[DatumWithOid<'_>],
) -> SpiResult<Option<A>> {
    Spi::connect(|client| client.select(query, Some(1), args)?.first().get_one())
}
