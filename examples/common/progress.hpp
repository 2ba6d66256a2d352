// A console progress bar for the examples: batches, loss, accuracy, throughput and ETA, redrawn
// in place on a terminal, plain lines (ten per epoch) when the output is a file or a pipe.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace lux_examples {

class progress_bar {
 public:
  progress_bar(std::string title, long total, FILE* out = stdout)
      : title_(std::move(title)),
        total_(total),
        out_(out),
        tty_(isatty(fileno(out)) != 0),
        start_(clock::now()) {}

  /// Reports that `done` of `total` batches are finished, with the running loss and accuracy
  /// and the number of samples processed so far.
  void update(long done, double loss, double accuracy, long samples) {
    const double secs = std::chrono::duration<double>(clock::now() - start_).count();
    const double rate = secs > 0 ? double(samples) / secs : 0;
    const double eta = done > 0 ? secs * double(total_ - done) / double(done) : 0;
    if (tty_) {
      const auto now = clock::now();
      if (done != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
      last_draw_ = now;
      constexpr int width = 30;
      const int filled = total_ > 0 ? int(width * done / total_) : width;
      std::string bar(std::size_t(filled), '=');
      if (filled < width) bar += '>';
      bar.resize(width, ' ');
      std::fprintf(out_, "\r%s [%s] %ld/%ld  loss %.4f  acc %5.2f%%  %6.0f samples/s  ETA %3.0fs ",
                   title_.c_str(), bar.c_str(), done, total_, loss, 100 * accuracy, rate, eta);
      if (done == total_) std::fputc('\n', out_);
    } else {
      const long step = total_ >= 10 ? total_ / 10 : 1;
      if (done % step != 0 && done != total_) return;
      std::fprintf(out_, "%s %ld/%ld  loss %.4f  acc %5.2f%%  %6.0f samples/s  ETA %3.0fs\n",
                   title_.c_str(), done, total_, loss, 100 * accuracy, rate, eta);
    }
    std::fflush(out_);
  }
  double seconds() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  std::string title_;
  long total_;
  FILE* out_;
  bool tty_;
  clock::time_point start_;
  clock::time_point last_draw_{};
};

}  // namespace lux_examples
