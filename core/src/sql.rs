//! Portable SQL functions available on both backends.

diesel::define_sql_function! {
    /// `lower(text)`: lower-cases a text value.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
