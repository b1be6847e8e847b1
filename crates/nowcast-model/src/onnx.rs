//! ONNX models scored by ONNX Runtime (through `ort`).
//!
//! # Concurrency
//! In `ort` 2.0.0-rc.15 `Session::run` takes `&mut self` (its authors consider ONNX Runtime's
//! `Run` not thread-safe), so a session cannot be shared by concurrent callers. Each model keeps
//! a small pool of sessions built from the same bytes: a caller takes an idle session, runs, and
//! puts it back. Sessions are created lazily, so the pool grows to the number of callers that
//! actually score at the same time, capped by [`LoadOptions::max_sessions`] (default: the number
//! of cores); past the cap callers wait for a session. `max_sessions = 1` is the plain
//! `Mutex<Session>` design. Measured on the 2-core dev machine (`benches/score.rs`, section
//! "concurrency", 3 runs): two threads scoring single rows through one mutexed session got
//! 77k–246k calls/s with p99 15–230 µs; through the pool 169k–403k calls/s with p99 9–17 µs.
//! Uncontended, both cost the same (one uncontended lock).
//!
//! Every session runs single-threaded: 1 intra-op thread, 1 inter-op thread, sequential
//! execution, no spinning. The models are small, so thread hand-offs would cost more than they
//! save, and a predictable latency per call matters more than peak speed of one large batch.
//!
//! # Single rows
//! Scoring one row is the common case (one event, one prediction), and for these models ONNX
//! Runtime's fixed cost per call dominates. Each pooled session therefore keeps a preallocated
//! `[1, n_inputs]` input tensor and a preallocated output tensor: a one-row call copies the row
//! in and runs, creating no tensors. That saved ~1 µs of ~4–5 µs per call (to p50 3.0 µs for the
//! logistic regression and 3.7 µs for the 100-tree GBT, plain `ort`, best of 6 rounds).
//! Memory-pattern planning is off (batch sizes vary), which measured slightly faster too. At
//! load, the one-row path and the general path are both run and must agree.

use std::path::{Path, PathBuf};

use ort::memory::Allocator;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session, SessionOutputs};
use ort::value::{Tensor, TensorElementType, TensorRef, ValueType};
use parking_lot::{Condvar, Mutex};

use crate::trees::TreeEnsemble;
use crate::{runtime, LoadOptions, ModelError};

/// Probe rows a compiled tree ensemble is checked on against ONNX Runtime at load.
const PROBE_ROWS: usize = 4096;

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
    /// Shape of the chosen output for one row (`[1, 2]`, `[1]` or `[1, 1]`), if fully known.
    single_output_shape: Option<Vec<usize>>,
    bytes: Vec<u8>,
    pool: Pool,
    /// The natively compiled tree ensemble, when the graph is one and it agreed with ONNX
    /// Runtime on the probe rows; scoring then bypasses the sessions.
    compiled: Option<Box<TreeEnsemble>>,
    /// What scores: `"onnxruntime"` (with the reason a tree ensemble was not compiled, if it
    /// was tried) or `"compiled …"`.
    engine: String,
}

/// One session plus the run options that select the output we read.
struct Worker {
    session: Session,
    options: RunOptions<HasSelectedOutputs>,
    single: Option<SingleRow>,
}

/// Preallocated tensors for one-row calls.
struct SingleRow {
    input: Tensor<f32>,
    /// Selects the output into a preallocated tensor.
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
        let (output, readout, single_output_shape) = choose_output(name, path, &session)?;
        let mut model = OnnxModel {
            name: name.to_string(),
            path: path.to_path_buf(),
            n_inputs,
            output,
            readout,
            single_output_shape,
            bytes,
            compiled: None,
            engine: "onnxruntime".into(),
            pool: Pool {
                state: Mutex::new(PoolState {
                    idle: Vec::new(),
                    created: 1,
                }),
                returned: Condvar::new(),
                max: options.max_sessions.max(1),
            },
        };
        let worker = model.new_worker(session)?;
        model.pool.state.get_mut().idle.push(worker);
        model.trial_run()?;
        if options.compile_trees {
            model.compile_trees();
        }
        Ok(model)
    }

    /// Compiles the graph if it is a supported tree ensemble and keeps the compiled form if it
    /// scores [`PROBE_ROWS`] probe rows exactly as ONNX Runtime does (within 1e-6 absolute, or
    /// relative beyond 1).
    fn compile_trees(&mut self) {
        let trees = match TreeEnsemble::compile(&self.bytes, self.n_inputs, &self.output) {
            Ok(trees) => trees,
            Err(why) => {
                self.engine = format!("onnxruntime (not compiled: {why})");
                return;
            }
        };
        let rows = trees.probe_rows(PROBE_ROWS);
        let (mut want, mut got) = (Vec::new(), Vec::new());
        if let Err(e) = self.score(&rows, PROBE_ROWS, &mut want, "(loading)") {
            self.engine = format!("onnxruntime (compiled trees not checked: {e})");
            return;
        }
        trees.score(&rows, &mut got);
        let worst = want
            .iter()
            .zip(&got)
            .enumerate()
            .map(|(i, (w, g))| {
                let d = if w.is_nan() && g.is_nan() {
                    0.0
                } else {
                    (w - g).abs() / w.abs().max(1.0)
                };
                (i, if d.is_nan() { f64::INFINITY } else { d })
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match worst {
            Some((i, d)) if d > 1e-6 => {
                self.engine = format!(
                    "onnxruntime (compiled trees differ on probe row {i}: {} vs {})",
                    got[i], want[i]
                );
            }
            _ => {
                let exact = want.iter().zip(&got).filter(|(w, g)| w == g).count();
                self.engine = format!(
                    "compiled {} (equal to ONNX Runtime on {exact} of {PROBE_ROWS} probe rows, the rest within 1e-6)",
                    trees.describe()
                );
                self.compiled = Some(Box::new(trees));
            }
        }
    }

    /// What scores this model (see [`crate::LoadedModel::engine`]).
    pub(crate) fn engine(&self) -> &str {
        &self.engine
    }

    /// Scores rows of zeros through the one-row path and the batch path; both must work and agree.
    fn trial_run(&self) -> Result<(), ModelError> {
        let fail = |detail: String| ModelError::UnsupportedOutput {
            model: self.name.clone(),
            path: self.path.clone(),
            detail,
        };
        let zeros = vec![0.0; 2 * self.n_inputs];
        let (mut one, mut two) = (Vec::new(), Vec::new());
        self.score(&zeros[..self.n_inputs], 1, &mut one, "(loading)")
            .map_err(|e| fail(format!("a trial run on one row of zeros failed: {e}")))?;
        self.score(&zeros, 2, &mut two, "(loading)")
            .map_err(|e| fail(format!("a trial run on two rows of zeros failed: {e}")))?;
        let same =
            |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(1.0) || (a.is_nan() && b.is_nan());
        if !(same(one[0], two[0]) && same(two[0], two[1])) {
            return Err(fail(format!(
                "rows of zeros scored {one:?} alone but {two:?} as a batch of two"
            )));
        }
        Ok(())
    }

    /// Scores `n_rows` rows; `rows.len() == n_rows * n_inputs` is checked by the caller.
    pub(crate) fn score(
        &self,
        rows: &[f32],
        n_rows: usize,
        out: &mut Vec<f64>,
        version: &str,
    ) -> Result<(), ModelError> {
        if let Some(trees) = &self.compiled {
            trees.score(rows, out);
            return Ok(());
        }
        let fail = |detail: String| ModelError::Inference {
            model: self.name.clone(),
            version: version.to_string(),
            n_rows,
            detail,
        };
        let mut lease = self.checkout()?;
        let Worker {
            session,
            options,
            single,
        } = lease.worker.as_mut().expect("leased worker present");
        if let (1, Some(single)) = (n_rows, single.as_mut()) {
            let (_, input) = single
                .input
                .try_extract_tensor_mut::<f32>()
                .map_err(|e| fail(e.to_string()))?;
            input.copy_from_slice(rows);
            let outputs = session
                .run_with_options(ort::inputs![&single.input], &single.options)
                .map_err(|e| fail(e.to_string()))?;
            return self.read(&outputs, n_rows, out).map_err(fail);
        }
        let tensor = TensorRef::from_array_view(([n_rows, self.n_inputs], rows))
            .map_err(|e| fail(e.to_string()))?;
        let outputs = session
            .run_with_options(ort::inputs![tensor], &*options)
            .map_err(|e| fail(e.to_string()))?;
        self.read(&outputs, n_rows, out).map_err(fail)
    }

    /// Appends one score per row from the chosen output.
    fn read(
        &self,
        outputs: &SessionOutputs<'_>,
        n_rows: usize,
        out: &mut Vec<f64>,
    ) -> Result<(), String> {
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| format!("output `{}` missing from the result", self.output))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        let shape: &[i64] = shape;
        match self.readout {
            Readout::PositiveClass => {
                if shape != [n_rows as i64, 2] {
                    return Err(format!(
                        "`{}` has shape {shape:?}, expected [{n_rows}, 2]",
                        self.output
                    ));
                }
                out.extend(data.chunks_exact(2).map(|pair| f64::from(pair[1])));
            }
            Readout::Value => {
                if data.len() != n_rows {
                    return Err(format!(
                        "`{}` has shape {shape:?}, expected [{n_rows}] or [{n_rows}, 1]",
                        self.output
                    ));
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
                    .and_then(|s| self.new_worker(s));
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

    /// Wraps a session with its run options and, if the output shape is known, the one-row
    /// tensors.
    fn new_worker(&self, session: Session) -> Result<Worker, ModelError> {
        let fail = |e: ort::Error| ModelError::Inference {
            model: self.name.clone(),
            version: "(loading)".into(),
            n_rows: 0,
            detail: format!("cannot prepare a session: {e}"),
        };
        let options = RunOptions::new()
            .map_err(fail)?
            .with_outputs(OutputSelector::no_default().with(&self.output));
        let single = match &self.single_output_shape {
            Some(shape) => {
                let allocator = Allocator::default();
                let input = Tensor::<f32>::new(&allocator, [1, self.n_inputs]).map_err(fail)?;
                let output = Tensor::<f32>::new(&allocator, shape.clone()).map_err(fail)?;
                let options = RunOptions::new().map_err(fail)?.with_outputs(
                    OutputSelector::no_default()
                        .with(&self.output)
                        .preallocate(&self.output, output),
                );
                Some(SingleRow { input, options })
            }
            None => None,
        };
        Ok(Worker {
            session,
            options,
            single,
        })
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
        .and_then(|b| b.with_memory_pattern(false).map_err(Into::into))
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

/// The output to read, how, and its one-row shape if every non-batch dimension is known.
fn choose_output(
    name: &str,
    path: &Path,
    session: &Session,
) -> Result<(String, Readout, Option<Vec<usize>>), ModelError> {
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
            } if shape.len() == 2 && (shape[1] == 2 || shape[1] < 0) => Ok((
                probs.name().to_string(),
                Readout::PositiveClass,
                (shape[1] == 2).then(|| vec![1, 2]),
            )),
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
        [single] => {
            let rank = single.dtype().tensor_shape().map_or(0, |s| s.len());
            Ok((
                single.name().to_string(),
                Readout::Value,
                Some(vec![1; rank]),
            ))
        }
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
