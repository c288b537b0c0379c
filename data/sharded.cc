#include "ember/data/sharded.h"

#include <utility>

namespace ember::data {

ShardedReader::ShardedReader(std::unique_ptr<BatchReader> inner, int worker, int workers)
    : inner_(std::move(inner)), worker_(worker), workers_(workers) {}

Result<bool> ShardedReader::Next(Batch* batch) {
  bool mine = false;
  StreamCursor end;
  for (int i = 0; i < workers_; ++i) {
    Batch* into = i == worker_ ? batch : &skip_;
    EMBER_ASSIGN_OR_RETURN(bool got, inner_->Next(into));
    if (!got) {  // an incomplete group: nobody takes it
      batch->size = 0;
      return false;
    }
    mine |= i == worker_;
    end = into->end;
  }
  batch->end = std::move(end);  // the stream goes on after the group
  return mine;
}

}  // namespace ember::data
