package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.SyntheticModel;
import org.junit.jupiter.api.Test;

/** Sizing a GPU KV cache by device memory (no device needed: arithmetic only). */
class CudaKvBudgetTest {

  private static final long GIB = 1L << 30;

  @Test
  void bytesPerTokenCountKeysValuesAndSelfExtendsGroupedKeysPerElementType() {
    // Llama-3.1-8B: 32 layers, 8 KV heads of 128
    LlamaConfig c = SyntheticModel.Shape.LLAMA_3_1_8B.config();
    assertThat(CudaKvCache.bytesPerToken(c, false, KvCacheType.F32)).isEqualTo(2L * 32 * 1024 * 4);
    assertThat(CudaKvCache.bytesPerToken(c, true, KvCacheType.F32)).isEqualTo(3L * 32 * 1024 * 4);
    assertThat(CudaKvCache.bytesPerToken(c, false, KvCacheType.F16)).isEqualTo(2L * 32 * 1024 * 2);
    assertThat(CudaKvCache.bytesPerToken(c, true, KvCacheType.F16)).isEqualTo(3L * 32 * 1024 * 2);
  }

  @Test
  void kvCacheTypesParseAsTheCommandLineSpellsThem() {
    assertThat(KvCacheType.parse("f16")).isEqualTo(KvCacheType.F16);
    assertThat(KvCacheType.parse(" F32 ")).isEqualTo(KvCacheType.F32);
    assertThatThrownBy(() -> KvCacheType.parse("q8_0"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("f32 or f16")
        .hasMessageContaining("q8_0");
  }

  @Test
  void unsetCapacityIsWhatFitsInWholePagesAfterTheHeadroom() {
    long perToken = 256 * 1024; // 8B FP32 K+V
    // H200: 141 GiB total, 120 GiB free after 16 GiB of weights; headroom 5 % = 7.05 GiB
    long total = 141 * GIB;
    long free = 120 * GIB;
    long fit = CudaKvCache.tokensThatFit(free, total, perToken, 0);
    long budget = free - total / 20;
    assertThat(fit % CudaKvCache.PAGE_TOKENS).isZero();
    assertThat(fit * perToken).isLessThanOrEqualTo(budget);
    assertThat((fit + CudaKvCache.PAGE_TOKENS) * perToken).isGreaterThan(budget);
    // a small device keeps at least 1 GiB free
    assertThat(CudaKvCache.headroomBytes(8 * GIB)).isEqualTo(GIB);
    assertThat(CudaKvCache.tokensThatFit(GIB / 2, 8 * GIB, perToken, 0)).isZero();
  }

  @Test
  void aConfiguredCapacityThatFitsIsKeptAndOneThatDoesNotFailsNamingBoth() {
    long perToken = 256 * 1024;
    assertThat(CudaKvCache.tokensThatFit(40 * GIB, 80 * GIB, perToken, 100_000)).isEqualTo(100_000);
    assertThatThrownBy(() -> CudaKvCache.tokensThatFit(40 * GIB, 80 * GIB, perToken, 1_000_000))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("a KV cache of 1000000 tokens needs 244.14 GiB")
        .hasMessageContaining("40.00 GiB are free")
        .hasMessageContaining("--kv-cache-tokens");
  }
}
