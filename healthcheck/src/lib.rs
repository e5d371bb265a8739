//! healthcheck: placeholder
