#include "pipeline/channel_counters.h"

#include <mutex>

namespace isthmus::pipeline {

void ChannelOutcomeCounters::CountOutcome(std::string_view state) {
  if (state == "filtered") {
    filtered.fetch_add(1, std::memory_order_relaxed);
  } else if (state == "error" || state == "invalid" || state == "unrouted" || state == "rejected") {
    errored.fetch_add(1, std::memory_order_relaxed);
  }
  // "queued" counts later, per destination (delivered / dead); "processed" is journaled only.
}

ChannelOutcomeCounters* ChannelCounterRegistry::For(std::string_view channel) {
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = by_name_.find(channel);
    if (it != by_name_.end()) return it->second.get();
  }
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto& slot = by_name_[std::string(channel)];
  if (!slot) slot = std::make_unique<ChannelOutcomeCounters>();
  return slot.get();
}

std::vector<ChannelOutcomeSnapshot> ChannelCounterRegistry::Snapshot() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<ChannelOutcomeSnapshot> out;
  out.reserve(by_name_.size());
  for (const auto& [name, c] : by_name_) {
    out.push_back(ChannelOutcomeSnapshot{name, c->filtered.load(), c->errored.load(),
                                         c->delivered.load(), c->dead.load()});
  }
  return out;
}

}  // namespace isthmus::pipeline
