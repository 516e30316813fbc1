//! The hub's errors: each names what is wrong and carries a stable code for front ends.

use aidmesh_model::FieldError;

/// One bad row of an import, with every reason it is bad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// 1-based row: for CSV, the row as a spreadsheet numbers it (the header and hashtag rows
    /// count, so the first data row under them is row 3); for JSON, the element of the array.
    pub row: usize,
    pub id: Option<String>,
    pub errors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {kind}: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid { kind: String, errors: Vec<FieldError> },
    #[error("no record with id {0}")]
    NotFound(String),
    /// A contact that is not there to read or erase: erased, or never held here. Says which.
    #[error("{0}")]
    NoContact(String),
    #[error(
        "{kind} records are append-only: record an amendment instead (aidmesh amend {id} FIELD VALUE --reason ...)"
    )]
    AppendOnly { kind: String, id: String },
    #[error("import refused, nothing was changed: {} bad row{}\n{}", rows.len(), if rows.len() == 1 { "" } else { "s" },
        rows.iter().map(|r| format!("  row {}{}: {}", r.row, r.id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default(), r.errors.join("; "))).collect::<Vec<_>>().join("\n"))]
    Import { rows: Vec<RowError> },
    #[error("malformed {format}: {why}")]
    Malformed { format: &'static str, why: String },
    #[error("the store is damaged: {0}")]
    Corrupt(String),
    /// A person's PIN did not unlock their key.
    #[error("that PIN does not unlock {0}'s key")]
    WrongPin(String),
    /// A change from another hub that alters or removes a record that is never changed (a
    /// stock movement, an incident, an expense, ...): refused whole, nothing stored.
    #[error("refused a change that rewrites the record log: {0}. Records of this kind are never changed (corrections are amendments); nothing was stored")]
    Tampered(String),
    /// Changes from elsewhere that no member hub's signature vouches for: refused whole,
    /// nothing stored.
    #[error("refused changes that are not signed by a member hub: {0}; nothing was stored")]
    Unsigned(String),
    /// Authority work by someone who does not hold the right, or with no one unlocked.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// Authority entries a peer sent that the log's door refused (forged, or by someone without
    /// the right): the session with that peer ends.
    #[error("the peer sent {count} authority {} that this hub refused, first: {first}", if *count == 1 { "entry" } else { "entries" })]
    RefusedAuthority { count: usize, first: String },
    /// Whereabouts that their hub did not sign: the session with the peer that sent them ends,
    /// or the bundle that carried them is refused (its documents with it).
    #[error("{0}: refused")]
    RefusedWhereabouts(String),
    #[error(transparent)]
    Store(#[from] aidmesh_store::Error),
    #[error(transparent)]
    Replica(#[from] aidmesh_replica::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn invalid(kind: &str, errors: Vec<FieldError>) -> Error {
        Error::Invalid { kind: kind.to_string(), errors }
    }

    /// A stable code for front ends, so that none matches on message text.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::NotFound(_) | Error::NoContact(_) => "not_found",
            Error::AppendOnly { .. } => "append_only",
            Error::Import { .. } => "import_refused",
            Error::Malformed { .. } => "malformed",
            Error::Corrupt(_) => "corrupt",
            Error::WrongPin(_) => "wrong_pin",
            Error::Tampered(_) => "tampered",
            Error::Unsigned(_) => "unsigned_change",
            Error::NotAllowed(_) => "not_allowed",
            Error::RefusedAuthority { .. } => "refused_authority",
            Error::RefusedWhereabouts(_) => "refused_whereabouts",
            Error::Store(aidmesh_store::Error::WrongPassphrase(_)) => "wrong_passphrase",
            Error::Store(aidmesh_store::Error::Missing(_)) => "no_store",
            Error::Store(aidmesh_store::Error::Exists(_)) => "store_exists",
            Error::Store(aidmesh_store::Error::DiskFull(_)) => "disk_full",
            Error::Store(aidmesh_store::Error::Busy { .. }) => "busy",
            Error::Store(_) => "storage",
            Error::Replica(_) => "replica",
            Error::Io(_) => "io",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
