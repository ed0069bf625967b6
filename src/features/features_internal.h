/* Internal: feature ids in spec order (generated from the spec's name list). */
#ifndef AP_FEATURES_INTERNAL_H
#define AP_FEATURES_INTERNAL_H

#define AP_FEATURE_LIST(X) \
    X(F_OPEN, "open") \
    X(F_HIGH, "high") \
    X(F_LOW, "low") \
    X(F_CLOSE, "close") \
    X(F_VOLUME, "volume") \
    X(F_EMA_9, "ema_9") \
    X(F_EMA_21, "ema_21") \
    X(F_EMA_50, "ema_50") \
    X(F_SMA_20, "sma_20") \
    X(F_SMA_50, "sma_50") \
    X(F_MACD, "macd") \
    X(F_MACD_SIGNAL, "macd_signal") \
    X(F_MACD_HISTOGRAM, "macd_histogram") \
    X(F_RSI, "rsi") \
    X(F_BB_MIDDLE, "bb_middle") \
    X(F_BB_UPPER, "bb_upper") \
    X(F_BB_LOWER, "bb_lower") \
    X(F_BB_WIDTH, "bb_width") \
    X(F_BB_POSITION, "bb_position") \
    X(F_ATR, "atr") \
    X(F_STOCH_K, "stoch_k") \
    X(F_STOCH_D, "stoch_d") \
    X(F_WILLIAMS_R, "williams_r") \
    X(F_DI_PLUS, "di_plus") \
    X(F_DI_MINUS, "di_minus") \
    X(F_ADX, "adx") \
    X(F_PRICE_CHANGE, "price_change") \
    X(F_PRICE_CHANGE_ABS, "price_change_abs") \
    X(F_HIGH_LOW_RATIO, "high_low_ratio") \
    X(F_CLOSE_OPEN_RATIO, "close_open_ratio") \
    X(F_PRICE_MEAN_5, "price_mean_5") \
    X(F_PRICE_STD_5, "price_std_5") \
    X(F_PRICE_MIN_5, "price_min_5") \
    X(F_PRICE_MAX_5, "price_max_5") \
    X(F_PRICE_RANGE_5, "price_range_5") \
    X(F_VOLUME_MEAN_5, "volume_mean_5") \
    X(F_VOLUME_STD_5, "volume_std_5") \
    X(F_VOLUME_RATIO_5, "volume_ratio_5") \
    X(F_MOMENTUM_5, "momentum_5") \
    X(F_VOLATILITY_5, "volatility_5") \
    X(F_PRICE_MEAN_10, "price_mean_10") \
    X(F_PRICE_STD_10, "price_std_10") \
    X(F_PRICE_MIN_10, "price_min_10") \
    X(F_PRICE_MAX_10, "price_max_10") \
    X(F_PRICE_RANGE_10, "price_range_10") \
    X(F_VOLUME_MEAN_10, "volume_mean_10") \
    X(F_VOLUME_STD_10, "volume_std_10") \
    X(F_VOLUME_RATIO_10, "volume_ratio_10") \
    X(F_MOMENTUM_10, "momentum_10") \
    X(F_VOLATILITY_10, "volatility_10") \
    X(F_PRICE_MEAN_20, "price_mean_20") \
    X(F_PRICE_STD_20, "price_std_20") \
    X(F_PRICE_MIN_20, "price_min_20") \
    X(F_PRICE_MAX_20, "price_max_20") \
    X(F_PRICE_RANGE_20, "price_range_20") \
    X(F_VOLUME_MEAN_20, "volume_mean_20") \
    X(F_VOLUME_STD_20, "volume_std_20") \
    X(F_VOLUME_RATIO_20, "volume_ratio_20") \
    X(F_MOMENTUM_20, "momentum_20") \
    X(F_VOLATILITY_20, "volatility_20") \
    X(F_CLOSE_LAG_1, "close_lag_1") \
    X(F_VOLUME_LAG_1, "volume_lag_1") \
    X(F_PRICE_CHANGE_LAG_1, "price_change_lag_1") \
    X(F_CLOSE_LAG_2, "close_lag_2") \
    X(F_VOLUME_LAG_2, "volume_lag_2") \
    X(F_PRICE_CHANGE_LAG_2, "price_change_lag_2") \
    X(F_CLOSE_LAG_3, "close_lag_3") \
    X(F_VOLUME_LAG_3, "volume_lag_3") \
    X(F_PRICE_CHANGE_LAG_3, "price_change_lag_3") \
    X(F_CLOSE_LAG_5, "close_lag_5") \
    X(F_VOLUME_LAG_5, "volume_lag_5") \
    X(F_PRICE_CHANGE_LAG_5, "price_change_lag_5") \
    X(F_CLOSE_LAG_10, "close_lag_10") \
    X(F_VOLUME_LAG_10, "volume_lag_10") \
    X(F_PRICE_CHANGE_LAG_10, "price_change_lag_10") \
    X(F_RSI_LAG_1, "rsi_lag_1") \
    X(F_MACD_LAG_1, "macd_lag_1") \
    X(F_ATR_LAG_1, "atr_lag_1") \
    X(F_RSI_LAG_2, "rsi_lag_2") \
    X(F_MACD_LAG_2, "macd_lag_2") \
    X(F_ATR_LAG_2, "atr_lag_2") \
    X(F_RSI_LAG_3, "rsi_lag_3") \
    X(F_MACD_LAG_3, "macd_lag_3") \
    X(F_ATR_LAG_3, "atr_lag_3") \
    X(F_VOLUME_SMA, "volume_sma") \
    X(F_VOLUME_RATIO, "volume_ratio") \
    X(F_VOLUME_SURGE, "volume_surge") \
    X(F_VOLUME_PRICE_TREND, "volume_price_trend") \
    X(F_VOLUME_PRICE_RATIO, "volume_price_ratio") \
    X(F_OBV, "obv") \
    X(F_VWAP, "vwap") \
    X(F_VOLATILITY_REGIME_HIGH, "volatility_regime_high") \
    X(F_TREND_REGIME, "trend_regime") \
    X(F_HIGHER_HIGHS, "higher_highs") \
    X(F_HIGHER_LOWS, "higher_lows") \
    X(F_LOWER_HIGHS, "lower_highs") \
    X(F_LOWER_LOWS, "lower_lows") \
    X(F_SUPPORT, "support") \
    X(F_RESISTANCE, "resistance") \
    X(F_PRICE_TO_SUPPORT, "price_to_support") \
    X(F_PRICE_TO_RESISTANCE, "price_to_resistance")

enum {
#define X(id, name) id,
    AP_FEATURE_LIST(X)
#undef X
    F_COUNT_
};

#endif
