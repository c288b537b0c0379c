// Every config key, declared once: its name, type and default as docs/config.md shows them, one
// line of doc, and the binding that reads it into its field of RunConfig (most of them fields of
// the modules' own configs, embedded there). docs/config.md's table is ConfigKeysMarkdown();
// launcher_test checks the file against it and each documented default against the code's.
#include "config_keys.h"

#include "config_bindings.h"

namespace ember::launcher {

using namespace bindings;  // NOLINT: the table below reads as a list of keys

namespace {
const std::vector<embedding::OptimizerKind> kSparseOptimizers = {
    embedding::OptimizerKind::kSgd, embedding::OptimizerKind::kAdagrad, embedding::OptimizerKind::kRowwiseAdagrad,
    embedding::OptimizerKind::kAdam, embedding::OptimizerKind::kFtrl};
}  // namespace

const std::vector<ConfigKey>& ConfigKeys() {
  static const std::vector<ConfigKey> keys = {
      {"data.train", "string or string array", "(required)",
       "training data: a file, a glob (`\"day-*.csv\"`, its matches in name order) or an array of them, read as one "
       "stream (a cluster's workers split the stream's batches)",
       TrainFiles()},
      {"data.test", "string", "`\"\"`", "evaluation file, scored after training (`\"\"` = none)", Str(AT(test))},
      {"data.valid", "string", "`\"\"`",
       "validation file: OptEmbed's search scores candidates on it (required for `optembed`); with the other "
       "methods every epoch is scored on it (AUC, log loss), the best epoch is written to `checkpoint.dir/best` "
       "and, where a later epoch scored worse, restored before the final checkpoint and test",
       Str(AT(valid))},
      {"data.format", "string", "`\"criteo\"`",
       "input format; `criteo`: label, integer and hex categorical fields, tab-separated; `csv` / `tsv`: columns "
       "described by `data.columns`; `avazu`: Avazu's CSV (hour of day and weekday from `hour`); `diginetica` "
       "(`train-item-views.csv`, `;`-separated) or `yoochoose` (TAB: `SessionId`, `ItemId`, `Time`, optional "
       "`Category`): session logs for `m2trec` / `sasrec` (docs/sessions.md)",
       Str(AT(format), {"criteo", "csv", "tsv", "avazu", "diginetica", "yoochoose"})},
      {"data.delimiter", "string", "`\",\"` (csv), TAB (tsv)", "`csv` / `tsv`: the one-character column delimiter",
       Str(AT(delimiter))},
      {"data.header", "bool", "`true`",
       "`csv` / `tsv`: the first line names the columns (columns are matched by name; header columns not in "
       "`data.columns` are skipped); `false`: matched by position",
       Bool(AT(header))},
      {"data.columns", "array of tables", "none",
       "`csv` / `tsv`: the columns, each `{name, role}` with role `label`, `dense` (`transform` = `log1p` | `none` | "
       "`standardize`, optional `mean` / `std`, else counted on `data.train`), `categorical` (`encoding` = `string` "
       "(hashed) | `hex` | `int`), `multi_hot` (ids split by `separator`, default `|`; `pooling` = `sum` | `mean`; "
       "`weighted = true` reads `id:weight`), `yymmddhh` (hour of day and weekday fields) or `ignore` "
       "(docs/formats.md)",
       Columns()},
      {"data.schema", "string", "`\"\"`",
       "`csv` / `tsv`: a TOML file holding `[[columns]]` (as `data.columns`) and optionally `delimiter`, `header`, "
       "`max_bag_length`, in place of those keys (`ember datagen ctr --multi-hot` writes one)",
       Str(AT(schema_file))},
      {"data.follow", "bool", "`false`",
       "train on `data.train` as it grows, until SIGTERM / SIGINT: a file read as lines are appended, or a directory "
       "(or glob) whose new files join the stream in name order, each once (write them elsewhere and rename them in); "
       "the position in the stream is checkpointed (docs/online.md)",
       Bool(AT(follow))},
      {"data.follow_poll_seconds", "float", "`1`", "`data.follow`: how often the stream is checked for more",
       Num(AT(follow_poll_s), 0.01, 3600)},
      {"data.cache", "bool", "`false`",
       "read every data stream through its binary cache (columns of parsed examples, mmap), built on first use and "
       "rebuilt when its files or columns change (`ember prepare` builds it ahead; docs/formats.md)",
       Bool(AT(cache))},
      {"data.cache_dir", "string", "`\"\"`", "where the caches live (`\"\"` = beside each stream's first file)",
       Str(AT(cache_dir))},
      {"data.max_bag_length", "int", "`1024`", "a multi-hot value with more ids is an error naming its line",
       Int(AT(max_bag_length), 1, 1 << 20)},
      {"data.items", "string", "`\"\"`",
       "sessions: item attribute file (header; first column the item id, the others categorical attributes; `;`, TAB "
       "or `,`), e.g. Diginetica's `product-categories.csv` or `ember datagen sessions --items-out`",
       Str(AT(items))},
      {"data.min_item_count", "int", "`5`", "sessions: items seen fewer times in the whole log are dropped (SR-GNN)",
       Int(AT(sessions.min_item_count), 1, INT32_MAX)},
      {"data.test_days", "float", "`7`",
       "sessions: test = sessions dated after (max date − test_days); ignored when `data.test` gives a test log",
       Num(AT(sessions.test_days), 0, 1e6)},
      {"data.drop_boundary", "bool", "`true`",
       "sessions: sessions dated exactly on the split boundary are in neither split (SR-GNN's strict comparisons); "
       "`false` puts them in training",
       Bool(AT(sessions.drop_boundary))},
      {"data.cold_items", "string", "`\"keep\"`",
       "sessions: test items unseen in training are kept as cold items (numbered after the training items; their "
       "metrics are reported separately); `drop` removes them as SR-GNN does",
       Str(AT(sessions.cold_items), {"keep", "drop"})},
      {"data.train_fraction", "float", "`1`",
       "sessions: train on the most recent share of the expanded training examples (`yoochoose1_64` = 1/64)",
       Num(AT(sessions.train_fraction), 1e-9, 1)},
      {"data.rare_max_count", "int", "`10`", "sessions: \"rare\" targets are items seen 1..n times in training",
       Int(AT(sessions.rare_max_count), 1, INT32_MAX)},
      {"data.item_id_attribute", "bool", "`false`",
       "sessions: add the item id as one more attribute (M2TRec's hybrid; with `embedding.method = \"unified\"` or "
       "`\"hash\"` it is a hashed probe)",
       Bool(AT(sessions.item_id_attribute))},
      {"data.valid_fraction", "float", "`0.1`",
       "sessions: random share of the training examples held out; the epoch with the best validation Recall@20 gives "
       "the test metrics reported (0 = the last epoch)",
       Num(AT(valid_fraction), 0, 0.9)},
      {"data.on_bad_line", "string", "`\"error\"`",
       "`error`: stop at a malformed line, naming file and line; `skip`: skip and count it",
       Enum(AT(on_bad_line), {data::BadLinePolicy::kError, data::BadLinePolicy::kSkip}, BadLineName)},
      {"data.num_dense", "int", "`13`", "`criteo`: integer fields per line (other formats: the dense columns)",
       Int(AT(trainer.model.num_dense), 0, 64)},
      {"data.num_sparse", "int", "`26`", "`criteo`: categorical fields per line (other formats: from the columns)",
       Int(AT(num_sparse), 1, 1000)},
      {"data.max_rows", "int", "`0`", "read at most this many training rows per epoch (0 = all)",
       Int(AT(max_rows), 0, INT64_MAX)},
      {"data.max_line_bytes", "int", "`1048576`",
       "a data line longer than this is an error naming its file and line (not a buffer that grows with the file)",
       Int(AT(max_line_bytes), 1024, int64_t{1} << 30)},
      {"data.vocab", "string", "`\"\"`",
       "a vocabulary file written by `ember vocab`: values outside a field's vocabulary read as one out-of-vocabulary "
       "value per field (docs/formats.md)",
       Str(AT(vocab))},
      {"model.name", "string", "`\"dlrm\"`",
       "`dlrm`, `deepfm`, `lr` (logistic regression), `dcn_v2`, `wide_deep` or `fm`; on session data `m2trec` "
       "(items by their metadata only) or `sasrec` (the item-ID baseline)",
       Enum(AT(trainer.model.kind),
            {models::ModelKind::kDlrm, models::ModelKind::kDeepFm, models::ModelKind::kLr, models::ModelKind::kDcnV2,
             models::ModelKind::kWideDeep, models::ModelKind::kFm, models::ModelKind::kM2Trec,
             models::ModelKind::kSasRec},
            models::ModelKindName)},
      {"model.cross_layers", "int", "`3`", "`dcn_v2`: cross layers", Int(AT(trainer.model.cross_layers), 0, 64)},
      {"model.cross_structure", "string", "`\"stacked\"`",
       "`dcn_v2`: `stacked` (cross layers, then the top MLP) or `parallel` (cross layers beside the top MLP)",
       Enum(AT(trainer.model.cross_structure), {models::CrossStructure::kStacked, models::CrossStructure::kParallel},
            models::CrossStructureName)},
      {"model.cross_rank", "int", "`0`", "`dcn_v2`: rank of each cross layer's matrix (`0` = full rank)",
       Int(AT(trainer.model.cross_rank), 0, 65536)},
      {"model.first_order", "bool", "auto",
       "`dlrm` and `dcn_v2`: add first-order weights (1-wide rows trained with `linear.*`, FTRL by default) and a "
       "dense linear term to the logit, like Wide & Deep's wide part beside the interactions; auto: `true` for "
       "both, so that the rows are free to learn the pairs (docs/quality.md), and a checkpoint resumed or scored "
       "keeps its own",
       OptionalBool(AT(first_order))},
      {"model.layers", "int", "`2`", "session models: Transformer encoder layers",
       Int(AT(session_model.layers), 1, 64)},
      {"model.attention_heads", "int", "`2`", "session models: attention heads (must divide the item width)",
       Int(AT(session_model.heads), 1, 64)},
      {"model.dropout", "float", "`0.1`", "session models: encoder dropout", Num(AT(session_model.dropout), 0, 0.99)},
      {"model.max_length", "int", "`50`", "session models: prefixes are left-truncated to their last n items",
       Int(AT(session_model.max_length), 1, 4096)},
      {"model.pooling", "string", "model's",
       "`mean` over the session (M2TRec's default) or `last` position (SASRec's default)",
       Str(AT(session_model.pooling), {"mean", "last"})},
      {"model.category_heads", "string array",
       "`[\"category\"]` for m2trec when the items have it (or `categoryId`), else `[]`",
       "item attributes predicted by a multi-task softmax head from the session encoding", CategoryHeads()},
      {"model.head_weights", "float array", "all `1`", "loss weight λ of each category head (0 disables one)",
       FloatList(AT(head_weights))},
      {"model.bottom_mlp", "int array", "`[512, 256, 64]`",
       "DLRM bottom MLP hidden widths; `embedding.dim` is appended as its output",
       IntList(AT(trainer.model.bottom_mlp), 1, INT32_MAX)},
      {"model.top_mlp", "int array", "`[512, 256]`",
       "DLRM top MLP / DeepFM deep MLP hidden widths; a width-1 output layer is appended",
       IntList(AT(trainer.model.top_mlp), 1, INT32_MAX)},
      {"embedding.method", "string", "`\"full\"`",
       "`full`: one collisionless keyed table per field; `hash`: one shared table, row = H(field, id) mod "
       "`embedding.rows`; `unified`: Unified Embedding, `embedding.tables` shared tables, `embedding.chunks` salted "
       "probes per value, concatenated; `dsl`: Dynamic Sparse Learning, per-field tables whose rows keep "
       "`embedding.density` of their entries (only kept values stored), pruned and regrown during training; "
       "`optembed`: OptEmbed's three stages in one run (supernet with learned per-field row thresholds, evolutionary "
       "search of per-field widths under the budget on `data.valid`, retraining of the kept rows at the searched "
       "widths)",
       Enum(AT(trainer.embedding.method),
            {embedding::Method::kFull, embedding::Method::kHash, embedding::Method::kUnified, embedding::Method::kDsl,
             embedding::Method::kOptEmbed},
            embedding::MethodName)},
      {"embedding.budget", "float, int or string", "none",
       "memory budget of the embedding parameters: a fraction of the full fp32 table (`0.1`, `\"1/100\"`) or bytes "
       "(`5000000`, `\"64MiB\"`, `\"2GB\"`). The full table is one row per distinct training value of every field, "
       "counted from `data.train` (cached in `<train>.fields.json`), in every embedding group of the model (DeepFM, "
       "Wide "
       "& Deep and FM add 1-wide first-order weights); each group gets bytes in proportion to its width. Each method "
       "turns its share into sizes: `hash` rows, `unified` rows per table, `dsl` density, `optembed` a search "
       "constraint (first-order weights beside `dsl` or `optembed` are hashed into their share, and so are LR's under "
       "`dsl`: 1-wide rows have no entries to sparsify); `full` keeps the most frequent values of `data.train` that "
       "fit (a row each in every group) and maps the others to one out-of-vocabulary row per field, as `data.vocab` "
       "does (docs/compression.md). A budget a method cannot meet is an error saying why. `ember plan` shows the "
       "result",
       BudgetKey()},
      {"embedding.precision", "string", "`\"fp32\"`",
       "`fp16` stores dense rows' weights as IEEE half (updates computed in fp32, rounded to nearest even); optimizer "
       "state stays fp32. Budgets count 2 bytes per weight",
       Enum(AT(trainer.embedding.precision), {embedding::Precision::kFp32, embedding::Precision::kFp16},
            PrecisionName)},
      {"embedding.density", "float", "`1.0`",
       "`dsl`: share of each row's entries kept (set by `embedding.budget` when given: (budget - one ceil(dim/8)-byte "
       "mask per row) / (rows x dim x 4))",
       Num(AT(trainer.embedding.density), 1e-6, 1)},
      {"embedding.admit_after", "int", "`0`",
       "feature admission (docs/admission.md): a value gets its own row at its k-th training sighting (a batch that "
       "carries it); until then it reads and trains its field's fallback row. 0 or 1: no admission. Applies to full, "
       "dsl and optembed fields and unified's collisionless fields",
       Int(AT(trainer.embedding.lifecycle.admit_after), 0, UINT32_MAX)},
      {"embedding.field_admit_after", "table", "`{}`", "per-field overrides, `{ C3 = 10, C7 = 2 }`", FieldAdmitAfter()},
      {"embedding.admit_probability", "float", "`1.0`",
       "below 1: at each sighting from the k-th on, admit with this probability (deterministic per value and sighting)",
       Num(AT(trainer.embedding.lifecycle.admit_probability), 1e-9, 1)},
      {"embedding.admit_sketch_width", "int", "`65536`",
       "counters per row of each table shard's count-min sketch (4 bytes each); 0 = exact counts (memory grows with "
       "the distinct values)",
       Int(AT(trainer.embedding.lifecycle.sketch_width), 0, int64_t{1} << 26)},
      {"embedding.admit_sketch_depth", "int", "`4`",
       "rows of the sketch (over-count above e·N/width with probability at most e^-depth)",
       Int(AT(trainer.embedding.lifecycle.sketch_depth), 1, 64)},
      {"embedding.expire_after_steps", "int", "`0`",
       "rows no training pull or push touched in this many steps are evicted with their optimizer state (scanned every "
       "max(1, n/8) steps); 0 = never",
       Int(AT(trainer.embedding.lifecycle.expire_after), 0, INT64_MAX)},
      {"embedding.fallback", "string", "`\"oov\"`",
       "what a value without its own row reads: `oov`, one shared row per field; `hash`, its row in a shared hashed "
       "table of `embedding.fallback_rows` rows",
       Enum(AT(trainer.embedding.fallback), {embedding::Fallback::kOov, embedding::Fallback::kHash},
            embedding::FallbackName)},
      {"embedding.fallback_rows", "int", "`0`", "rows of the hashed fallback table (`embedding.fallback = \"hash\"`)",
       Int(AT(trainer.embedding.fallback_rows), 0, int64_t{1} << 40)},
      {"embedding.field_chunks", "int array", "`[]`",
       "`unified`: chunks per field (0 = `embedding.chunks`, at most `embedding.chunks`); a field with fewer chunks is "
       "zero-padded to `embedding.dim`",
       IntList(AT(trainer.embedding.field_chunks), 0, 64)},
      {"embedding.collisionless_below", "int", "`0`",
       "`unified`: fields with at most this many distinct values get their own collisionless rows (`vocab x c_f` rows "
       "of width dim / chunks), charged to the budget first",
       Int(AT(trainer.embedding.collisionless_below), 0, INT64_MAX)},
      {"embedding.frequent_share", "float", "`0.5`",
       "`unified` under `embedding.budget`: the share of the budget that buys collisionless rows (in every embedding "
       "group) for the most frequent values of `data.train`; the other values probe the shared tables, which get the "
       "rest (docs/compression.md, *Frequent values*); 0: every value probes them",
       Num(AT(frequent_share), 0, 0.99)},
      {"embedding.field_methods", "table", "`{}`",
       "per-field method overrides, `{ C3 = \"hash\", C7 = \"dsl\" }`: under `full`, `hash` or `dsl` each field may "
       "take any of the three (hash fields share one table of `embedding.rows` rows); under `unified` a field may be "
       "`full` (its own collisionless rows)",
       FieldMethods()},
      {"embedding.dim", "int", "`16`", "row width", Int(AT(trainer.embedding.dim), 1, 4096)},
      {"embedding.rows", "int", "`1048576`", "rows of the hashed table (`hash`), rows per shared table (`unified`)",
       Int(AT(trainer.embedding.rows), 1, int64_t{1} << 50)},
      {"embedding.tables", "int", "`2`",
       "`unified`: shared tables T; chunks are assigned to them round-robin across fields",
       Int(AT(trainer.embedding.tables), 1, 1000)},
      {"embedding.chunks", "int", "`0`",
       "`unified`: probes per value c; each probe's row is `embedding.dim / c` wide (c must divide `embedding.dim`; "
       "the 1-wide first-order weights of LR, DeepFM, Wide & Deep and FM are probed at "
       "`embedding.first_order_chunks`). 0: the most probes, at most 8, whose width divides `embedding.dim` (8 at the "
       "default dim 16; docs/compression.md)",
       Int(AT(trainer.embedding.chunks), 0, 64)},
      {"embedding.first_order_chunks", "int", "`1`",
       "`unified`: probes of each value's 1-wide first-order weight (LR, DeepFM, Wide & Deep, FM), each 1 wide and "
       "summed; 2 helps LR at moderate budgets and costs a little at 1/100 (docs/compression.md)",
       Int(AT(trainer.embedding.first_order_chunks), 1, embedding::kMaxChunks)},
      {"embedding.optimizer", "string", "`\"rowwise_adagrad\"`",
       "sparse optimizer: `sgd`, `adagrad`, `rowwise_adagrad`, `adam`, `ftrl`",
       Enum(AT(trainer.embedding.optimizer.kind), kSparseOptimizers, embedding::OptimizerName)},
      {"embedding.lr", "float", "auto",
       "sparse learning rate; auto: 0.1 for `dlrm` and `dcn_v2` with `adagrad` or `rowwise_adagrad` rows (their rows "
       "learn the pairs; docs/quality.md), else 0.05",
       Num(AT(trainer.embedding.optimizer.lr), 0, 100)},
      {"embedding.eps", "float", "`1e-8`", "denominator term of Adagrad / row-wise Adagrad / Adam",
       Num(AT(trainer.embedding.optimizer.eps), 0, 1)},
      {"embedding.initial_accumulator", "float", "auto",
       "starting Adagrad / row-wise Adagrad state of new rows; auto: 0, except where rows carry over several epochs "
       "(`train.reset_rows` resolving to `never`) and for `deepfm` and `fm` (whose factorization machine "
       "multiplies the rows directly): 40 / (global batch)², which caps the steps of rows seen rarely so that they "
       "move with their gradients instead of memorising their few examples (docs/quality.md)",
       Num(AT(trainer.embedding.optimizer.initial_accumulator), 0, 1e6)},
      {"embedding.beta1", "float", "`0.9`", "`adam`: decay rate of the first-moment estimate",
       Num(AT(trainer.embedding.optimizer.beta1), 0, 0.999999)},
      {"embedding.beta2", "float", "`0.999`", "`adam`: decay rate of the second-moment estimate",
       Num(AT(trainer.embedding.optimizer.beta2), 0, 0.999999)},
      {"embedding.ftrl_beta", "float", "`1.0`",
       "`ftrl`: beta of the per-coordinate rate lr / (beta + sqrt(n)); these rows see batch-mean gradients",
       Num(AT(trainer.embedding.optimizer.beta), 0, 1e6)},
      {"embedding.l1", "float", "`0.0`", "`ftrl`: L1 strength (batch-mean loss units)",
       Num(AT(trainer.embedding.optimizer.l1), 0, 1e6)},
      {"embedding.l2", "float", "`0.0`", "`ftrl`: L2 strength (batch-mean loss units)",
       Num(AT(trainer.embedding.optimizer.l2), 0, 1e6)},
      {"linear.optimizer", "string", "`\"ftrl\"`",
       "sparse optimizer of the first-order weights (the 1-wide rows of LR, DeepFM, Wide & Deep and FM), which "
       "see gradients of the batch's summed loss (per-example units): the `embedding.optimizer` kinds",
       Enum(AT(trainer.linear_optimizer.kind), kSparseOptimizers, embedding::OptimizerName)},
      {"linear.lr", "float", "`0.1`", "learning rate (`ftrl`: alpha) of the first-order weights",
       Num(AT(trainer.linear_optimizer.lr), 0, 100)},
      {"linear.ftrl_beta", "float", "`1.0`", "`ftrl`: beta of the first-order weights",
       Num(AT(trainer.linear_optimizer.beta), 0, 1e6)},
      {"linear.l1", "float", "`0.0`", "`ftrl`: L1 strength of the first-order weights",
       Num(AT(trainer.linear_optimizer.l1), 0, 1e6)},
      {"linear.l2", "float", "`10.0`",
       "`ftrl`: L2 strength of the first-order weights (like 1/C of an L2 logistic regression over one epoch)",
       Num(AT(trainer.linear_optimizer.l2), 0, 1e6)},
      {"linear.initial_accumulator", "float", "`0.0`", "starting Adagrad / FTRL state of the first-order weights",
       Num(AT(trainer.linear_optimizer.initial_accumulator), 0, 1e6)},
      {"embedding.init_scale", "float", "auto",
       "new rows are uniform in [-s, s], derived from (seed, key): independent of shard and order; auto: 0.1 for "
       "`dlrm` and `dcn_v2` (rows that meet in dot products or crosses need a start their gradients can grow "
       "from; docs/quality.md), 0.01 for the others",
       Num(AT(trainer.embedding.init_scale), 0, 10)},
      {"embedding.seed", "int", "`0`", "seed of hash salts and row initialisation",
       Int(AT(trainer.embedding.seed), 0, INT64_MAX)},
      {"train.epochs", "int", "`1`", "passes over `data.train`", Int(AT(epochs), 1, 100000)},
      {"train.lr_decay", "float", "auto",
       "CTR models: epoch e (from 0) trains the dense model at `train.lr` × `lr_decay`^e; auto: 0 (the dense layers "
       "train in the first epoch only) where embedding rows carry over between epochs (every model but `lr`, with "
       "`train.reset_rows` resolving to `never`), else 0.5 (docs/quality.md)",
       Num(AT(trainer.dense_lr_decay), 0, 1)},
      {"train.reset_rows", "string", "`\"auto\"`",
       "CTR models, `auto`: `each_epoch` for `deepfm` and `fm`, `never` for the others (docs/quality.md); `never`: "
       "the embedding rows carry over from epoch to epoch (with the auto `train.lr_decay` and "
       "`embedding.initial_accumulator`, the later epochs train the rows and first-order weights against the first "
       "epoch's dense layers); `each_epoch`: the rows (not the first-order weights) restart from their initial "
       "values at every epoch after the first while the dense model and the first-order weights keep training "
       "(MEDA; docs/quality.md)",
       Enum(AT(reset_rows), {workers::RowReset::kAuto, workers::RowReset::kEachEpoch, workers::RowReset::kNever},
            workers::RowResetName)},
      {"train.batch_size", "int", "`1024`", "examples per step", Int(AT(batch_size), 1, 1 << 24)},
      {"train.lr", "float", "`0.001`", "dense learning rate", Num(AT(trainer.dense_lr), 0, 100)},
      {"train.optimizer", "string", "`\"adam\"`", "dense optimizer: `adam`, `adagrad`, `sgd`",
       Enum(AT(trainer.dense_optimizer),
            {workers::DenseOptimizer::kAdam, workers::DenseOptimizer::kAdagrad, workers::DenseOptimizer::kSgd},
            workers::DenseOptimizerName)},
      {"train.candidates", "int", "`0`",
       "session models: sampled softmax with this many uniformly drawn candidates per step (shared by the batch, plus "
       "the batch's targets); 0 = as the catalogue requires: the full softmax up to 50,000 items, 8192 sampled "
       "candidates beyond. A value at least the catalogue's size is the full softmax. Evaluation always ranks the "
       "whole catalogue",
       Int(AT(candidates), 0, INT64_MAX)},
      {"train.patience", "int", "`0`",
       "stop after this many epochs without a validation gain (CTR models: on `data.valid`; session models: "
       "on their validation split); 0 = run every epoch",
       Int(AT(patience), 0, 100000)},
      {"train.threads", "int", "`0`", "LibTorch intra-op threads (0 = all cores)", Int(AT(threads), 0, 1024)},
      {"train.seed", "int", "`1`", "seed of dense initialisation", Int(AT(trainer.seed), 0, INT64_MAX)},
      {"train.eval_batch_size", "int", "`8192`", "examples per evaluation batch", Int(AT(eval_batch_size), 1, 1 << 24)},
      {"train.progress", "string", "`\"auto\"`",
       "`auto`: a redrawn line with rate and ETA on a terminal, log lines otherwise; `log`; `off`",
       Str(AT(progress), {"auto", "log", "off"})},
      {"train.log_interval_s", "float", "`10`", "seconds between progress log lines", Num(AT(log_interval_s), 0, 1e6)},
      {"optembed.alpha", "float", "`0.0003`",
       "weight of the threshold regulariser `alpha * sum_f exp(-t_f)` (higher prunes more)",
       Num(AT(trainer.optembed.alpha), 0, 1e3)},
      {"optembed.threshold_lr", "float", "`0.01`", "SGD rate of the per-field thresholds",
       Num(AT(trainer.optembed.threshold_lr), 0, 1e3)},
      {"optembed.population", "int", "`10`", "search: initial candidates",
       Int(AT(trainer.optembed.population), 2, 10000)},
      {"optembed.rounds", "int", "`10`", "search: generations", Int(AT(trainer.optembed.rounds), 0, 10000)},
      {"optembed.mutants", "int", "`5`", "search: mutated copies of the best per round",
       Int(AT(trainer.optembed.mutants), 0, 10000)},
      {"optembed.children", "int", "`5`", "search: crossovers among the best per round",
       Int(AT(trainer.optembed.children), 0, 10000)},
      {"optembed.keep", "int", "`5`", "search: best candidates carried into the next round",
       Int(AT(trainer.optembed.keep), 1, 10000)},
      {"optembed.mutate_prob", "float", "`0.1`",
       "search: chance that a field's width (or the threshold shift) is redrawn",
       Num(AT(trainer.optembed.mutate_prob), 0, 1)},
      {"optembed.search_samples", "int", "`8000`", "validation examples each candidate is scored on",
       Int(AT(trainer.optembed.search_samples), 1, INT64_MAX)},
      {"optembed.seed", "int", "`7`", "search seed", Int(AT(trainer.optembed.seed), 0, INT64_MAX)},
      {"optembed.fallback_share", "float", "`0.25`",
       "under `embedding.budget`: the share of the budget kept for a hashed table that pruned values read in "
       "retraining (the search keeps rows within the rest; the table also takes what they leave); 0: pruned "
       "values read zeros",
       Num(AT(trainer.optembed.fallback_share), 0, 0.95)},
      {"optembed.retrain_init", "string", "`\"fresh\"`",
       "stage 3 starts kept rows from fresh initial values (`fresh`, the paper's default) or the supernet's leading "
       "entries (`inherit`)",
       Str(AT(retrain_init), {"fresh", "inherit"})},
      {"optembed.retrain_epochs", "int", "`0`", "stage 3 epochs (0 = `train.epochs`)",
       Int(AT(retrain_epochs), 0, 100000)},
      {"dsl.interval", "int", "`100`", "steps between prune/grow rounds (ΔT)",
       Int(AT(trainer.dsl.interval), 1, INT64_MAX)},
      {"dsl.p0", "float", "`0.5`",
       "prune fraction at the start, cosine-decayed to `dsl.p_min` over the run (`dsl.decay = \"none\"`: p0 "
       "throughout)",
       Num(AT(trainer.dsl.p0), 0, 1)},
      {"dsl.p_min", "float", "`0.005`", "prune fraction at the end of the cosine decay",
       Num(AT(trainer.dsl.p_min), 0, 1)},
      {"dsl.min_density", "float", "`0.5`",
       "under `embedding.budget`: values keep a row each while that leaves this share of its entries; below, "
       "they share hashed rows kept at this density (the masks of a row per value no longer eat the budget)",
       Num(AT(trainer.embedding.dsl_min_density), 0.01, 1)},
      {"dsl.rows", "int", "`0`",
       "`0`: a row per value; `n`: the dsl fields share n hashed rows at `embedding.density` (a budget sets it "
       "where it needs to)",
       Int(AT(trainer.embedding.dsl_rows), 0, INT64_MAX)},
      {"dsl.grow_window", "int", "`10`", "steps before a round whose gradients choose where to grow",
       Int(AT(trainer.dsl.grow_window), 1, INT64_MAX)},
      {"dsl.decay", "string", "`\"cosine\"`", "`cosine` (total steps from the training file's row count) or `none`",
       Str(AT(dsl_decay), {"cosine", "none"})},
      {"ps.shards", "int", "`1`", "in-process parameter-server shards (the same shard code the servers host)",
       Int(AT(shards), 1, 4096)},
      {"ps.servers", "int", "`1`",
       "under `mpirun -np N`: ranks 0..k-1 host the PS shards (server i holds the keys with `ShardOf(key, k) == i`), "
       "ranks k..N-1 train; each worker reads `train.batch_size` rows per step (the global batch is workers × "
       "batch_size), taking every W-th batch of the file (a last incomplete group of W batches is dropped)",
       Int(AT(ps_servers), 1, 4096)},
      {"train.collective", "string", "`\"auto\"`",
       "workers' dense all-reduce under mpirun: `auto` (NCCL where the build has it and a GPU is visible, else MPI), "
       "`mpi`, or `nccl` (an error without a GPU)",
       Str(AT(collective), {"auto", "mpi", "nccl"})},
      {"train.mode", "string", "`\"sync\"`",
       "how workers share embedding rows (docs/distributed.md): `sync` (a step's pushes from all workers are summed on "
       "the servers and applied as one update; every worker's next pull sees exactly that), `bounded` (pushes applied "
       "on arrival; a pull for step t waits until every worker's pushes of steps below t − `train.staleness` are in), "
       "`async` (pulls never wait). Dense gradients are all-reduced every step in every mode",
       Enum(AT(trainer.sync.mode),
            {workers::TrainMode::kSync, workers::TrainMode::kBounded, workers::TrainMode::kAsync},
            workers::TrainModeName)},
      {"train.staleness", "int", "`0`",
       "`bounded` mode's bound in steps (with 1 or more, the next batch's rows are pulled while the step computes); an "
       "error with another mode",
       Int(AT(trainer.sync.staleness), 0, 1000000)},
      {"train.device", "string", "`\"cpu\"`",
       "where the dense model, its optimizer and the interaction run: `cpu`; `cuda` (pulled rows copied to the GPU "
       "from pinned buffers, gradients back for the push; an error on a build whose LibTorch has no CUDA or where no "
       "GPU is visible); `auto` (CUDA where available, else the CPU). CTR models other than OptEmbed's supernet",
       Enum(AT(trainer.device), {workers::DeviceKind::kCpu, workers::DeviceKind::kCuda, workers::DeviceKind::kAuto},
            workers::DeviceKindName)},
      {"train.prefetch", "bool", "`true`",
       "pull the next batch's rows during the step: during its forward/backward where the mode allows rows a step old "
       "(`async`, `bounded` with staleness ≥ 1), else right after its push (overlapping the dense all-reduce and "
       "optimizer step); never across DSL maintenance",
       Bool(AT(trainer.prefetch))},
      {"ps.timeout_s", "float", "`300`",
       "a worker waits this long for a server's reply (then fails naming the server); a server gives a handshake and "
       "each frame this long to arrive, and ends the job this long after a worker's connection closed without a "
       "shutdown",
       Num(AT(ps_timeout_s), 0.01, 1e6)},
      {"ps.idle_timeout_s", "float", "`3600`",
       "an authenticated PS connection may sit idle this long between frames before the server closes it",
       Num(AT(ps_idle_timeout_s), 0.01, 1e7)},
      {"ps.max_frame_bytes", "int", "`1073741824`",
       "the largest PS frame payload a server or client accepts (refused from the header)",
       Int(AT(ps_max_frame_bytes), 1 << 16, UINT32_MAX)},
      {"ps.max_buffered_bytes", "int", "`2147483648`",
       "request payload bytes all of a server's connections may hold together (payload buffers grow with the bytes "
       "received); a frame that would pass it is refused",
       Int(AT(ps_max_buffered_bytes), 1 << 20, INT64_MAX)},
      {"ps.bind", "string", "`\"127.0.0.1\"`",
       "address PS servers listen on (loopback: one machine; `0.0.0.0` advertises the host name to the workers)",
       Str(AT(ps_bind))},
      {"checkpoint.dir", "string", "`\"\"`",
       "if set, a checkpoint `ckpt-<step>/` is written there at the end of training (session models: at the end of "
       "every epoch, and `best/` for the best validation epoch; docs/sessions.md); `ember train --resume` continues "
       "from its newest complete checkpoint",
       Str(AT(checkpoint_dir))},
      {"checkpoint.every_steps", "int", "`0`",
       "also write a checkpoint every N training steps (0: at the end only); each records the data position, so "
       "`--resume` continues mid-epoch",
       Int(AT(checkpoint_every_steps), 0, INT64_MAX)},
      {"checkpoint.keep", "int", "`3`",
       "keep the newest K `ckpt-<step>/` directories, removing older ones once a new one is complete (0: keep all)",
       Int(AT(checkpoint_keep), 0, 1000000)},
      {"export.dir", "string", "`\"\"`",
       "write exports while training into this directory, as `model-<step>.embx` (atomically; `ember serve --model "
       "DIR` serves the newest), every `export.every_steps` or `export.every_seconds` and when the job ends or stops",
       Str(AT(export_dir))},
      {"export.every_steps", "int", "`0`", "an export every n steps (0 = by time only)",
       Int(AT(export_every_steps), 0, INT64_MAX)},
      {"export.every_seconds", "float", "`0`",
       "an export when this many seconds passed since the last (0 = by steps only)",
       Num(AT(export_every_seconds), 0, 1e9)},
      {"export.precision", "string", "`\"fp32\"`", "`fp32`, `fp16` or `int8` rows (docs/formats.md)",
       Str(AT(export_precision), {"fp32", "fp16", "int8"})},
      {"export.keep", "int", "`5`",
       "keep the newest n exports of `export.dir` and every export they are deltas of (0 = all)",
       Int(AT(export_keep), 0, 1000000)},
      {"export.delta", "bool", "`false`",
       "after a full export, write deltas: the rows changed or evicted since the export before, and the dense "
       "weights (`ember serve` resolves a delta through its chain; docs/online.md)",
       Bool(AT(export_delta))},
      {"export.full_every", "int", "`10`", "with `export.delta`: a full export after this many deltas",
       Int(AT(export_full_every), 1, 1000)},
      {"monitoring.port", "int", "`0`",
       "serve Prometheus metrics at `GET /metrics` (and `/healthz`) on this port + rank; 0 = off. With it on, field "
       "vocabularies are counted (once, cached) for the compression ratio. See [monitoring.md](monitoring.md)",
       Int(AT(monitoring_port), 0, 65535)},
      {"monitoring.bind", "string", "`\"127.0.0.1\"`",
       "address the metrics endpoint binds to (loopback unless told otherwise)", Str(AT(monitoring_bind))},
      {"monitoring.linger_s", "float", "`0`",
       "keep serving metrics this many seconds after the run ends, so that short runs' final values are scraped",
       Num(AT(monitoring_linger_s), 0, 86400)},
  };
  return keys;
}

const ConfigKey* FindConfigKey(const std::string& name) {
  for (const auto& k : ConfigKeys())
    if (k.name == name) return &k;
  return nullptr;
}

std::vector<ConfigKeyDoc> ConfigKeyDocs() {
  std::vector<ConfigKeyDoc> out;
  for (const auto& k : ConfigKeys()) out.push_back({k.name, k.type, k.default_text, k.doc});
  return out;
}

std::string ConfigKeysMarkdown() {
  std::string s = "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const auto& k : ConfigKeys())
    s += "| `" + std::string(k.name) + "` | " + k.type + " | " + k.default_text + " | " + k.doc + " |\n";
  return s;
}

std::string ShowConfigValue(const RunConfig& config, const std::string& key) {
  const ConfigKey* k = FindConfigKey(key);
  return k && k->bind.show ? k->bind.show(config) : std::string();
}

}  // namespace ember::launcher
