//! ONNX models scored by ONNX Runtime (through `ort`).
//!
//! # Concurrency
//! In `ort` 2.0.0-rc.15 `Session::run` takes `&mut self` (its authors consider ONNX Runtime's
//! `Run` not thread-safe), so a session cannot be shared by concurrent callers. Each model keeps
//! a small pool of sessions built from the same bytes: a caller takes an idle session, runs, and
//! puts it back. Sessions are created lazily, so the pool grows to the number of callers that
//! actually score at the same time, capped by [`LoadOptions::max_sessions`] (default: the number
//! of cores); past the cap callers wait for a session. `max_sessions = 1` is the plain
//! `Mutex<Session>` design. Measured on 2 cores (see `benches/score.rs` and the crate README),
//! two threads scoring single rows get ~1.9× the throughput of one shared session with a pool,
//! and uncontended latency is the same (one uncontended lock either way).
//!
//! Every session runs single-threaded: 1 intra-op thread, 1 inter-op thread, sequential
//! execution, no spinning. The models are small, so thread hand-offs would cost more than they
//! save, and a predictable latency per call matters more than peak speed of one large batch.

use std::path::{Path, PathBuf};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session};
use ort::value::{TensorElementType, TensorRef, ValueType};
use parking_lot::{Condvar, Mutex};

use crate::{runtime, LoadOptions, ModelError};

/// How the chosen output becomes one score per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readout {
    /// `probabilities` `[N, 2]`: take column 1.
    PositiveClass,
    /// `[N]` or `[N, 1]`: take the value.
    Value,
}

/// A validated ONNX model with its session pool.
pub(crate) struct OnnxModel {
    name: String,
    path: PathBuf,
    n_inputs: usize,
    output: String,
    readout: Readout,
    bytes: Vec<u8>,
    pool: Pool,
}

/// One session plus the run options that select the output we read.
struct Worker {
    session: Session,
    options: RunOptions<HasSelectedOutputs>,
}

struct Pool {
    state: Mutex<PoolState>,
    returned: Condvar,
    max: usize,
}

struct PoolState {
    idle: Vec<Worker>,
    created: usize,
}

/// A checked-out worker; goes back to the pool on drop.
struct Lease<'a> {
    pool: &'a Pool,
    worker: Option<Worker>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.state.lock().idle.push(worker);
            self.pool.returned.notify_one();
        }
    }
}

impl OnnxModel {
    /// Builds the first session from `bytes`, validates input and outputs, and runs one row of
    /// zeros to check the output shape.
    pub(crate) fn new(
        name: &str,
        path: &Path,
        n_inputs: usize,
        bytes: Vec<u8>,
        options: &LoadOptions,
    ) -> Result<OnnxModel, ModelError> {
        let session = new_session(name, path, &bytes)?;
        validate_input(name, path, n_inputs, &session)?;
        let (output, readout) = choose_output(name, path, &session)?;
        let worker = new_worker(name, path, session, &output)?;
        let model = OnnxModel {
            name: name.to_string(),
            path: path.to_path_buf(),
            n_inputs,
            output,
            readout,
            bytes,
            pool: Pool {
                state: Mutex::new(PoolState {
                    idle: vec![worker],
                    created: 1,
                }),
                returned: Condvar::new(),
                max: options.max_sessions.max(1),
            },
        };
        let mut out = Vec::with_capacity(1);
        model
            .score(&vec![0.0; n_inputs], 1, &mut out, "(loading)")
            .map_err(|e| ModelError::UnsupportedOutput {
                model: name.to_string(),
                path: path.to_path_buf(),
                detail: format!("a trial run on one row of zeros failed: {e}"),
            })?;
        Ok(model)
    }

    /// Scores `n_rows` rows; `rows.len() == n_rows * n_inputs` is checked by the caller.
    pub(crate) fn score(
        &self,
        rows: &[f32],
        n_rows: usize,
        out: &mut Vec<f64>,
        version: &str,
    ) -> Result<(), ModelError> {
        let fail = |detail: String| ModelError::Inference {
            model: self.name.clone(),
            version: version.to_string(),
            n_rows,
            detail,
        };
        let tensor = TensorRef::from_array_view(([n_rows, self.n_inputs], rows))
            .map_err(|e| fail(e.to_string()))?;
        let mut lease = self.checkout()?;
        let Worker { session, options } = lease.worker.as_mut().expect("leased worker present");
        let outputs = session
            .run_with_options(ort::inputs![tensor], &*options)
            .map_err(|e| fail(e.to_string()))?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| fail(format!("output `{}` missing from the result", self.output)))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| fail(e.to_string()))?;
        let shape: &[i64] = shape;
        match self.readout {
            Readout::PositiveClass => {
                if shape != [n_rows as i64, 2] {
                    return Err(fail(format!(
                        "`{}` has shape {shape:?}, expected [{n_rows}, 2]",
                        self.output
                    )));
                }
                out.extend(data.chunks_exact(2).map(|pair| f64::from(pair[1])));
            }
            Readout::Value => {
                if data.len() != n_rows {
                    return Err(fail(format!(
                        "`{}` has shape {shape:?}, expected [{n_rows}] or [{n_rows}, 1]",
                        self.output
                    )));
                }
                out.extend(data.iter().map(|&v| f64::from(v)));
            }
        }
        Ok(())
    }

    /// Takes an idle session, creates one if below the cap, or waits for one.
    fn checkout(&self) -> Result<Lease<'_>, ModelError> {
        let mut state = self.pool.state.lock();
        loop {
            if let Some(worker) = state.idle.pop() {
                return Ok(Lease {
                    pool: &self.pool,
                    worker: Some(worker),
                });
            }
            if state.created < self.pool.max {
                state.created += 1;
                drop(state);
                let made = new_session(&self.name, &self.path, &self.bytes)
                    .and_then(|s| new_worker(&self.name, &self.path, s, &self.output));
                return match made {
                    Ok(worker) => Ok(Lease {
                        pool: &self.pool,
                        worker: Some(worker),
                    }),
                    Err(e) => {
                        self.pool.state.lock().created -= 1;
                        Err(e)
                    }
                };
            }
            self.pool.returned.wait(&mut state);
        }
    }

    /// Sessions created so far (for tests and diagnostics).
    pub(crate) fn sessions(&self) -> usize {
        self.pool.state.lock().created
    }

    /// `"probabilities[:, 1]"` or the regressor output's name.
    pub(crate) fn output_desc(&self) -> String {
        match self.readout {
            Readout::PositiveClass => format!("{}[:, 1]", self.output),
            Readout::Value => self.output.clone(),
        }
    }
}

fn new_session(name: &str, path: &Path, bytes: &[u8]) -> Result<Session, ModelError> {
    let runtime = runtime::runtime()?;
    let not_onnx = |detail: String| ModelError::NotOnnx {
        model: name.to_string(),
        path: path.to_path_buf(),
        detail,
    };
    let builder = Session::builder(&runtime.env)
        .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
        .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
        .and_then(|b| b.with_parallel_execution(false).map_err(Into::into))
        .and_then(|b| b.with_intra_op_spinning(false).map_err(Into::into))
        .and_then(|b| {
            b.with_optimization_level(GraphOptimizationLevel::All)
                .map_err(Into::into)
        });
    let mut builder = builder.map_err(|e: ort::Error| ModelError::RuntimeInit {
        path: runtime.path.clone(),
        detail: format!("session options rejected: {e}"),
    })?;
    builder
        .commit_from_memory(bytes)
        .map_err(|e| not_onnx(e.to_string()))
}

fn new_worker(
    name: &str,
    path: &Path,
    session: Session,
    output: &str,
) -> Result<Worker, ModelError> {
    let options = RunOptions::new()
        .map_err(|e| ModelError::Inference {
            model: name.to_string(),
            version: path.display().to_string(),
            n_rows: 0,
            detail: e.to_string(),
        })?
        .with_outputs(OutputSelector::no_default().with(output));
    Ok(Worker { session, options })
}

fn describe(ty: &ValueType) -> String {
    match ty {
        ValueType::Tensor { ty, shape, .. } => format!("{ty:?} tensor {:?}", &shape[..]),
        ValueType::Sequence(inner) => format!("sequence of {}", describe(inner)),
        ValueType::Map { key, value } => format!("map {key:?} -> {value:?}"),
        ValueType::Optional(inner) => format!("optional {}", describe(inner)),
    }
}

fn validate_input(
    name: &str,
    path: &Path,
    n_inputs: usize,
    session: &Session,
) -> Result<(), ModelError> {
    let unsupported = |detail: String| ModelError::UnsupportedInput {
        model: name.to_string(),
        path: path.to_path_buf(),
        detail,
    };
    let inputs = session.inputs();
    let [input] = inputs else {
        let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
        return Err(unsupported(format!(
            "it has {} inputs {names:?}, expected exactly one",
            inputs.len()
        )));
    };
    match input.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } if shape.len() == 2 => {
            let width = shape[1];
            if width >= 0 && width as usize != n_inputs {
                return Err(ModelError::InputCountMismatch {
                    model: name.to_string(),
                    source_desc: format!("`{}`", path.display()),
                    model_inputs: width as usize,
                    spec_inputs: n_inputs,
                });
            }
            Ok(())
        }
        other => Err(unsupported(format!(
            "input `{}` is a {}, expected a float32 tensor [N, {n_inputs}]",
            input.name(),
            describe(other)
        ))),
    }
}

fn choose_output(
    name: &str,
    path: &Path,
    session: &Session,
) -> Result<(String, Readout), ModelError> {
    let unsupported = |detail: String| ModelError::UnsupportedOutput {
        model: name.to_string(),
        path: path.to_path_buf(),
        detail,
    };
    let outputs = session.outputs();
    let float_tensor = |ty: &ValueType| {
        matches!(
            ty,
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                ..
            }
        )
    };
    if let Some(probs) = outputs.iter().find(|o| o.name() == "probabilities") {
        return match probs.dtype() {
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                shape,
                ..
            } if shape.len() == 2 && (shape[1] == 2 || shape[1] < 0) => {
                Ok((probs.name().to_string(), Readout::PositiveClass))
            }
            other => Err(unsupported(format!(
                "output `probabilities` is a {}, expected float32 [N, 2] (only binary classifiers are supported)",
                describe(other)
            ))),
        };
    }
    let candidates: Vec<_> = outputs
        .iter()
        .filter(|o| float_tensor(o.dtype()))
        .filter(|o| match o.dtype().tensor_shape() {
            Some(shape) => shape.len() == 1 || (shape.len() == 2 && shape[1] == 1),
            None => false,
        })
        .collect();
    match candidates[..] {
        [single] => Ok((single.name().to_string(), Readout::Value)),
        _ => {
            let found: Vec<String> = outputs
                .iter()
                .map(|o| format!("`{}`: {}", o.name(), describe(o.dtype())))
                .collect();
            let zipmap = outputs
                .iter()
                .any(|o| matches!(o.dtype(), ValueType::Sequence(_)));
            Err(unsupported(format!(
                "outputs [{}]{}",
                found.join(", "),
                if zipmap {
                    " include a ZipMap (sequence of maps)"
                } else {
                    ""
                }
            )))
        }
    }
}
