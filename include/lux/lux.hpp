// luxcpp — umbrella header: everything that needs no CUDA.
// (CUDA tensors: additionally #include <lux/core/cuda.hpp> and link luxcpp::cuda.)
#pragma once

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/device.hpp"
#include "lux/core/eigen.hpp"
#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/random.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"
#include "lux/layers/initializers.hpp"
