// Korean (default) and English labels; the choice is kept in localStorage.
const LABELS = {
  ko: {
    "skip": "본문으로",
    "nav.search": "찾기", "nav.rate": "별점 추천", "nav.evaluation": "평가",
    "footer": "MovieLens · TMDB · multilingual-e5-small · implicit ALS · Qdrant",
    "search.title": "무엇을 볼까요?",
    "search.lead": "제목으로 찾거나, 보고 싶은 이야기를 문장으로 적어 보세요.",
    "search.box": "제목 (한국어 또는 원제)", "search.placeholder": "예: 토이 스토리",
    "search.none": "찾는 영화가 없습니다.",
    "meaning.title": "의미로 찾기", "meaning.box": "줄거리로 찾기",
    "meaning.placeholder": "예: 우주를 배경으로 한 가족 영화", "meaning.go": "찾기",
    "meaning.similarity": "유사도",
    "movie.series": "시리즈", "movie.recs": "다음에 볼 영화", "movie.ratings": "평점",
    "movie.imdb": "IMDb에서 보기", "movie.back": "← 찾기로",
    "filters.genre": "장르", "filters.anyGenre": "모든 장르", "filters.adult": "성인 영화 포함",
    "filters.exclude": "제외할 영화 ID", "filters.apply": "적용",
    "strategy.hybrid": "하이브리드", "strategy.random": "무작위", "strategy.popular": "인기",
    "strategy.series": "시리즈", "strategy.vector": "줄거리 벡터", "strategy.collaborative": "협업 필터링",
    "strategy.series+vector": "시리즈+벡터", "strategy.default": "기본",
    "strategy.sequential": "이어서 본 영화", "strategy.recent-popular": "요즘 인기",
    "strategy.unavailable": "지금은 사용할 수 없습니다",
    "source.series": "같은 시리즈", "source.vector": "줄거리가 비슷함", "source.collaborative": "함께 본 관객",
    "source.popular": "인기 영화", "source.random": "무작위",
    "source.sequential": "이어서 본 관객", "source.recent-popular": "요즘 인기",
    "why.title": "추천 이유", "why.source": "출처", "why.score": "점수", "why.viewers": "이 영화를 본 뒤 바로 본 관객",
    "why.because": "기여한 별점 영화",
    "degraded": "일부 구성 요소 없이 답했습니다", "notice.ready": "일부 구성 요소가 응답하지 않습니다",
    "notice.hint": "추천은 남은 구성 요소로 계속됩니다.",
    "part.catalog": "카탈로그", "part.vectors": "벡터 저장소", "part.collaborative": "ALS 모델", "part.sequential": "이어서 본 영화 모델",
    "rate.title": "몇 편에 별점을 주세요", "rate.lead": "본 영화를 찾아 별점을 매기면 취향에 맞는 영화를 추천합니다.",
    "rate.add": "추가", "rate.remove": "빼기", "rate.stars": "별점", "rate.go": "추천 받기",
    "rate.empty": "아직 고른 영화가 없습니다.", "rate.results": "당신을 위한 추천",
    "rate.ignored": "모델이 쓰지 않은 별점",
    "eval.title": "평가", "eval.lead": "MovieLens 다음 영화 쌍의 적중률 (이전 영화 → 다음 영화)",
    "eval.strategy": "전략", "eval.answered": "응답", "eval.coverage": "커버리지",
    "eval.protocol": "평가 방법", "eval.minRatings": "최소 평점 수", "eval.pairs": "쌍",
    "eval.users": "사용자", "eval.window": "테스트 기간", "eval.cutoff": "기준 시각 (이전 데이터로만 학습)",
    "eval.fingerprint": "데이터 지문", "eval.ci": "95% 구간: 사용자 부트스트랩", "eval.plot": "전략별 적중률",
    "eval.markdown": "report.md 받기", "eval.missing": "평가 보고서가 아직 없습니다",
    "error": "요청이 실패했습니다", "loading": "불러오는 중…", "notFound": "영화를 찾을 수 없습니다",
  },
  en: {
    "skip": "Skip to content",
    "nav.search": "Search", "nav.rate": "Rate", "nav.evaluation": "Evaluation",
    "footer": "MovieLens · TMDB · multilingual-e5-small · implicit ALS · Qdrant",
    "search.title": "What to watch next?",
    "search.lead": "Find a movie by title, or describe the story you are in the mood for.",
    "search.box": "Title (Korean or original)", "search.placeholder": "e.g. Toy Story",
    "search.none": "No movie matches.",
    "meaning.title": "Search by meaning", "meaning.box": "Search by plot",
    "meaning.placeholder": "e.g. a family movie set in space", "meaning.go": "Search",
    "meaning.similarity": "similarity",
    "movie.series": "Series", "movie.recs": "Watch next", "movie.ratings": "ratings",
    "movie.imdb": "View on IMDb", "movie.back": "← Back to search",
    "filters.genre": "Genre", "filters.anyGenre": "Any genre", "filters.adult": "Include adult movies",
    "filters.exclude": "Exclude movie ids", "filters.apply": "Apply",
    "strategy.hybrid": "Hybrid", "strategy.random": "Random", "strategy.popular": "Popular",
    "strategy.series": "Series", "strategy.vector": "Overview vectors", "strategy.collaborative": "Collaborative",
    "strategy.series+vector": "Series + vectors", "strategy.default": "default",
    "strategy.sequential": "Watched next", "strategy.recent-popular": "Popular lately",
    "strategy.unavailable": "Not available right now",
    "source.series": "same series", "source.vector": "similar overview", "source.collaborative": "watched by the same viewers",
    "source.popular": "popular", "source.random": "random",
    "source.sequential": "watched next by the same viewers", "source.recent-popular": "popular lately",
    "why.title": "Why", "why.source": "source", "why.score": "score", "why.viewers": "viewers who watched it right after",
    "why.because": "Because you rated",
    "degraded": "Answered without some parts", "notice.ready": "Some parts of the service are not answering",
    "notice.hint": "Recommendations continue with the remaining parts.",
    "part.catalog": "catalog", "part.vectors": "vector store", "part.collaborative": "ALS model", "part.sequential": "watched-next model",
    "rate.title": "Rate a few movies", "rate.lead": "Find movies you have seen, give them stars and get movies for your taste.",
    "rate.add": "Add", "rate.remove": "Remove", "rate.stars": "stars", "rate.go": "Recommend",
    "rate.empty": "No movie picked yet.", "rate.results": "Recommended for you",
    "rate.ignored": "Ratings the model did not use",
    "eval.title": "Evaluation", "eval.lead": "Hit ratio on MovieLens next-item pairs (previous movie → next movie)",
    "eval.strategy": "strategy", "eval.answered": "answered", "eval.coverage": "coverage",
    "eval.protocol": "Protocol", "eval.minRatings": "minimum ratings per movie", "eval.pairs": "pairs",
    "eval.users": "users", "eval.window": "test window", "eval.cutoff": "cutoff (models trained only before it)",
    "eval.fingerprint": "data fingerprint", "eval.ci": "95% intervals: bootstrap over users", "eval.plot": "Hit ratio per strategy",
    "eval.markdown": "Download report.md", "eval.missing": "No evaluation report yet",
    "error": "The request failed", "loading": "Loading…", "notFound": "Movie not found",
  },
};

let lang = localStorage.getItem("nextwatch.lang") === "en" ? "en" : "ko";

/** The label for `key` in the current language (the key itself when unknown). */
/** The label of `key` in the current language, else Korean, else `fallback` (a name the server labels), else the key. */
export function t(key, fallback) {
  return LABELS[lang][key] ?? LABELS.ko[key] ?? fallback ?? key;
}

export function currentLang() {
  return lang;
}

/** Switch language, remember it, and relabel the static parts of the page. */
export function setLang(next) {
  lang = next === "en" ? "en" : "ko";
  localStorage.setItem("nextwatch.lang", lang);
  applyStatic();
}

/** Relabel elements carrying data-i18n. */
export function applyStatic() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
}
