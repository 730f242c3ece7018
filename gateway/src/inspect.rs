//! Looks at a query document before execution: which kind of operation it
//! selects (GET may not run mutations) and how many aliases it uses (alias
//! flooding multiplies work without deepening the query, so depth and
//! complexity limits alone do not stop it).

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};

/// What a document asks for.
pub struct Inspection {
    /// The parsed document, for the access check.
    pub doc: ExecutableDocument,
    /// The selected operation's name, if it has one (for metrics).
    pub name: Option<String>,
    /// The selected operation's type, if the document and name resolve to one.
    pub operation: Option<OperationType>,
    /// Aliased fields in the selected operation and the fragments it may use.
    pub aliases: usize,
}

/// Parses and inspects `query`. An error (the parser's message) if it does
/// not parse: such a document is refused, never executed.
pub fn inspect(query: &str, operation_name: Option<&str>) -> Result<Inspection, String> {
    let doc = async_graphql::parser::parse_query(query).map_err(|e| e.to_string())?;
    let (name, selected) = match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => (None, Some(&op.node)),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            (Some(name.to_owned()), ops.get(name).map(|o| &o.node))
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .iter()
            .next()
            .map_or((None, None), |(n, o)| (Some(n.to_string()), Some(&o.node))),
        _ => (None, None),
    };
    let operation = selected.map(|op| op.ty);
    let selected_aliases = selected.map_or(0, |op| count_aliases(&op.selection_set.node));
    let mut aliases = selected_aliases;
    // Fragments are counted once each, used or not: a simple upper bound.
    // Spreading one fragment many times is bounded by the complexity limit.
    aliases += fragment_aliases(&doc);
    Ok(Inspection {
        doc,
        name,
        operation,
        aliases,
    })
}

fn fragment_aliases(doc: &ExecutableDocument) -> usize {
    doc.fragments
        .values()
        .map(|f| count_aliases(&f.node.selection_set.node))
        .sum()
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count_aliases(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_operation_and_aliases() {
        let i = inspect("mutation M { a: logout b: logout }", None).unwrap();
        assert_eq!(i.name.as_deref(), Some("M"));
        assert_eq!(i.operation, Some(OperationType::Mutation));
        assert_eq!(i.aliases, 2);
        let i = inspect("query A { me { id } } mutation B { logout }", Some("B")).unwrap();
        assert_eq!(i.operation, Some(OperationType::Mutation));
        let i = inspect("query { ...F } fragment F on Query { x: me { id } }", None).unwrap();
        assert_eq!(i.aliases, 1);
        assert!(inspect("query {", None).is_err());
    }
}
