/// What can go wrong reading the manifests: each message names the object and the field.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{overlay} does not render: {message}")]
    Render { overlay: String, message: String },
    #[error("{0}: not valid YAML: {1}")]
    Yaml(String, String),
    #[error("{0} is not rendered")]
    Missing(String),
    #[error("{what}: {problem}")]
    Invalid { what: String, problem: String },
    #[error("{0}: not supported by this model")]
    Unsupported(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

impl ModelError {
    pub fn invalid(what: impl Into<String>, problem: impl Into<String>) -> ModelError {
        ModelError::Invalid {
            what: what.into(),
            problem: problem.into(),
        }
    }
}
