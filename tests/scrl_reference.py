"""SCRL's reference code (Jasper-Yan/SCRL at 06535a1), ported literally as the tests' oracle for vote_rule: scrl.

`reference_labels` is `determine_pseudo_labels` (verl/verl/trainer/ppo/scrl_utils.py:84-144) for one prompt, with
its answer extraction (`extract_answer`, `simplify_expression_string`) replaced by the answers given (None: no
answer); `reference_reward` is `reward_func` (verl/verl/utils/reward_score/scrl_math/__init__.py:61-160) with its
math grader `grade` replaced by string equality (the tests' answers are exact integers, one spelling each).
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def reference_labels(answers, entropies, tau_pos=0.5, tau_marg=0.15, tau_low_min=0.15):
    """scrl_utils.py:84-144 for one prompt, literally (model_answers given instead of extracted)."""
    prompt_entropys = np.array(entropies)
    _NO_ANSWER = "__NO_ANSWER__"
    model_answers = [answer if answer is not None else _NO_ANSWER for answer in answers]
    counter = Counter(model_answers)
    total_count = len(model_answers)
    sorted_answers = counter.most_common()
    answer_props = {}
    intra_class_entropys = {}
    for answer, count in sorted_answers:
        answer_props[answer] = count / total_count
        answer_indices = [j for j, a in enumerate(model_answers) if a == answer]
        intra_class_entropys[answer] = np.mean([prompt_entropys[j] for j in answer_indices])
    overall_avg_entropy = np.mean(prompt_entropys)
    pseudo_positive = None
    candidate_answers = [(a, c) for a, c in sorted_answers if a != _NO_ANSWER]
    if len(candidate_answers) >= 1:
        top_answer, top_count = candidate_answers[0]
        top_prop = answer_props[top_answer]
        if top_prop >= tau_pos:
            if len(candidate_answers) >= 2:
                second_prop = answer_props[candidate_answers[1][0]]
                margin = top_prop - second_prop
                if margin > tau_marg:
                    pseudo_positive = top_answer
            else:
                pseudo_positive = top_answer
    negative_answers = []
    for answer, _count in sorted_answers:
        prop = answer_props[answer]
        avg_h = intra_class_entropys[answer]
        if answer != pseudo_positive and answer != _NO_ANSWER and prop < tau_low_min and avg_h >= overall_avg_entropy:
            negative_answers.append(answer)
    label_stats = {
        "answer_proportions": answer_props,
        "intra_class_entropys": intra_class_entropys,
        "overall_avg_entropy": overall_avg_entropy,
    }  # scrl_utils.py:150-158, what the reward reads
    return pseudo_positive, negative_answers, label_stats


def reference_reward(model_answer, ground_truth, extra_info):
    """scrl_math/__init__.py:61-160, literally (grade -> ==, simplify_expression_string -> identity)."""
    if model_answer is None:
        return -1.0
    reward_mode = extra_info.get("reward_mode", "binary")
    a_plus = extra_info.get("a_plus", 1.0)
    a_minus = extra_info.get("a_minus", 1.0)
    negative_set = extra_info.get("negative_set", [])
    lambda_h = extra_info.get("lambda_h", 0.0)
    is_pseudo_positive = False
    is_negative = False
    if ground_truth is not None:
        is_pseudo_positive = model_answer == str(ground_truth)
    if not is_pseudo_positive and negative_set:
        for negative_answer in negative_set:
            if model_answer == negative_answer:
                is_negative = True
                break
    if reward_mode == "binary":
        if is_pseudo_positive:
            reward = 1.0
        elif is_negative:
            reward = -1.0
        else:
            reward = 0.0
    else:
        answer_proportions = extra_info.get("answer_proportions", {})
        intra_class_entropys = extra_info.get("intra_class_entropys", {})
        overall_avg_entropy = extra_info.get("overall_avg_entropy", 0.0)
        tau_low = extra_info.get("tau_low", 0.15)
        trajectory_avg_entropy = extra_info.get("trajectory_avg_entropy", 0.0)
        p_ai = answer_proportions.get(model_answer, 0.0)
        H_ai = intra_class_entropys.get(model_answer, trajectory_avg_entropy)
        H_bar = overall_avg_entropy
        entropy_penalty = lambda_h * (H_ai - H_bar)
        if is_pseudo_positive:
            reward = a_plus * (p_ai) - entropy_penalty
        elif is_negative:
            reward = -a_minus * (tau_low - p_ai) - entropy_penalty
        else:
            reward = -entropy_penalty
    return reward


def reference_rewards(
    answers, entropies, mode, tau_pos=0.5, tau_marg=0.15, tau_low=0.15, a_plus=1.0, a_minus=1.0, lambda_h=0.1
):
    """Every completion's reward as apply_scrl_gt (scrl_utils.py:260-287, :226-228) and reward_func compute it."""
    positive, negatives, stats = reference_labels(answers, entropies, tau_pos, tau_marg, tau_low)
    info = {"reward_mode": mode, "negative_set": negatives, "a_plus": a_plus, "a_minus": a_minus, "lambda_h": lambda_h}
    if mode == "continuous":
        info.update(
            answer_proportions=stats["answer_proportions"],
            intra_class_entropys=stats["intra_class_entropys"],
            overall_avg_entropy=stats["overall_avg_entropy"],
            tau_pos=tau_pos,
            tau_low=tau_low,
        )
    return [reference_reward(a, positive, {**info, "trajectory_avg_entropy": e}) for a, e in zip(answers, entropies)]
