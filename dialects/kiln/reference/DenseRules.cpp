//===- DenseRules.cpp - evaluation of embedding, linear, matmul, norms ----===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/DenseMath.h"
#include "dialects/kiln/reference/Evaluator.h"

#include <cmath>

using namespace mlir;

namespace kiln::reference {

static RefTensor resultLike(Operation *op, unsigned i = 0) {
  auto type = cast<ShapedType>(op->getResult(i).getType());
  return RefTensor(type.getElementType(), type.getShape());
}

void addDenseRules(RuleTable &table) {
  table.add("kiln.embedding", [](Operation *op, ArrayRef<const RefTensor *> in,
                                 SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &tableT = *in[0], &ids = *in[1];
    int64_t vocab = tableT.shape[0], hidden = tableT.shape[1];
    RefTensor r = resultLike(op);
    for (int64_t i = 0; i < ids.numElements(); ++i) {
      double id = ids.data[i];
      if (!(id >= 0 && id < vocab) || id != std::floor(id))
        return op->emitError() << "reference evaluator: token id " << formatNumber(id)
                               << " at flat position " << i
                               << " is outside the embedding table [0, "
                               << vocab << ")";
      std::copy_n(&tableT.data[int64_t(id) * hidden], hidden, &r.data[i * hidden]);
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.linear", [](Operation *op, ArrayRef<const RefTensor *> in,
                              SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &x = *in[0], &w = *in[1];
    int64_t n = w.shape[0], k = w.shape[1], rows = x.leadingElements();
    RefTensor r = resultLike(op);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t l = 0; l < k; ++l)
          acc += x.data[i * k + l] * w.data[j * k + l];
        r.data[i * n + j] = acc;
      }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.matmul", [](Operation *op, ArrayRef<const RefTensor *> in,
                              SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto mm = cast<MatmulOp>(op);
    const RefTensor &a = *in[0], &b = *in[1];
    RefTensor r = resultLike(op);
    int64_t rank = r.rank();
    int64_t m = r.shape[rank - 2], n = r.shape[rank - 1];
    int64_t k = mm.getTransposeLhs() ? a.shape[rank - 2] : a.shape[rank - 1];
    int64_t batch = r.numElements() / (m * n);
    bool ta = mm.getTransposeLhs(), tb = mm.getTransposeRhs();
    for (int64_t bi = 0; bi < batch; ++bi) {
      const double *pa = &a.data[bi * m * k], *pb = &b.data[bi * k * n];
      double *pr = &r.data[bi * m * n];
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t l = 0; l < k; ++l)
            acc += (ta ? pa[l * m + i] : pa[i * k + l]) *
                   (tb ? pb[j * k + l] : pb[l * n + j]);
          pr[i * n + j] = acc;
        }
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.rms_norm", [](Operation *op, ArrayRef<const RefTensor *> in,
                                SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    double eps = cast<RMSNormOp>(op).getEpsilon().convertToDouble();
    const RefTensor &x = *in[0], &gamma = *in[1];
    int64_t h = x.shape.back(), rows = x.leadingElements();
    RefTensor r = resultLike(op);
    for (int64_t i = 0; i < rows; ++i) {
      const double *px = &x.data[i * h];
      double inv = rmsInverse(px, h, eps);
      for (int64_t j = 0; j < h; ++j)
        r.data[i * h + j] = px[j] * inv * gamma.data[j];
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.silu", [](Operation *op, ArrayRef<const RefTensor *> in,
                            SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    RefTensor r = resultLike(op);
    for (int64_t i = 0; i < r.numElements(); ++i)
      r.data[i] = in[0]->data[i] * sigmoid(in[0]->data[i]);
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.swiglu", [](Operation *op, ArrayRef<const RefTensor *> in,
                              SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    RefTensor r = resultLike(op);
    for (int64_t i = 0; i < r.numElements(); ++i) {
      double g = in[0]->data[i];
      r.data[i] = g * sigmoid(g) * in[1]->data[i];
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.scale", [](Operation *op, ArrayRef<const RefTensor *> in,
                            SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    double factor = cast<ScaleOp>(op).getFactor().convertToDouble();
    RefTensor r = *in[0];
    for (double &v : r.data)
      v *= factor;
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.broadcast", [](Operation *op, ArrayRef<const RefTensor *> in,
                                 SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &x = *in[0];
    RefTensor r = resultLike(op);
    auto xs = x.strides();
    SmallVector<int64_t, 4> idx(r.rank(), 0);
    for (int64_t flat = 0; flat < r.numElements(); ++flat) {
      int64_t src = 0;
      for (int64_t d = 0; d < r.rank(); ++d)
        src += (x.shape[d] == 1 ? 0 : idx[d]) * xs[d];
      r.data[flat] = x.data[src];
      for (int64_t d = r.rank() - 1; d >= 0 && ++idx[d] == r.shape[d]; --d)
        idx[d] = 0;
    }
    out.push_back(std::move(r));
    return success();
  });
}

} // namespace kiln::reference
