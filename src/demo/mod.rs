//! `rollbridge demo`: a real deploy on built-in defaults, and the tiny web
//! app it deploys.

pub mod app;
pub mod run;
